"""Build the catalog once at start-up from INTERLOPER_CATALOG (dotted import paths).

Everything the API serves is precomputed here: the dump (spec 7.2) as JSON bytes, per key and
per kind, the resource kinds, and one pydantic validator per configurable component (the fields
of its `config_schema`). An import error does not stop the service: it is logged and reported
(path -> error) by `/readyz` and the detailed health."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

log = logging.getLogger(__name__)

NON_RESOURCE_KINDS = ("source", "asset", "destination")
KINDS = ("source", "asset", "destination", "connection", "config", "resource")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class AssetSpec:
    """What the API needs to know about an asset type (source-owned or standalone)."""

    key: str
    requires: dict[str, str]
    optional_requires: dict[str, str]
    partitioned: bool
    resources: dict[str, str]


@dataclass
class CatalogIndex:
    paths: list[str] = field(default_factory=list)
    dump: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    classes: dict[str, type] = field(default_factory=dict)
    validators: dict[str, type[BaseModel]] = field(default_factory=dict)
    dump_bytes: bytes = b"{}"
    entry_bytes: dict[str, bytes] = field(default_factory=dict)
    kind_bytes: dict[str, bytes] = field(default_factory=dict)
    resource_kinds: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def kind_of(self, key: str) -> str | None:
        entry = self.dump.get(key)
        return None if entry is None else str(entry.get("kind"))

    def slots(self, key: str) -> dict[str, str]:
        entry = self.dump.get(key) or {}
        return dict(entry.get("resources") or {})

    def source_assets(self, source_key: str) -> dict[str, AssetSpec]:
        entry = self.dump.get(source_key) or {}
        return {a["key"]: _asset_spec(a) for a in entry.get("assets") or []}

    def standalone_asset(self, key: str) -> AssetSpec | None:
        entry = self.dump.get(key)
        if entry is None or entry.get("kind") != "asset":
            return None
        return _asset_spec(entry)

    def resource_fits(self, resource_key: str, expected_key: str) -> bool:
        """Whether a resource of catalog key `resource_key` can fill a slot expecting `expected_key`."""
        if resource_key == expected_key:
            return True
        actual, wanted = self.classes.get(resource_key), self.classes.get(expected_key)
        return actual is not None and wanted is not None and issubclass(actual, wanted)

    def validate_config(self, key: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        """Pydantic-style errors of `values` against the component's config schema ([] if valid)."""
        model = self.validators.get(key)
        if model is None:
            return []
        try:
            model.model_validate(values)
        except ValidationError as exc:
            errors: list[dict[str, Any]] = json.loads(exc.json(include_url=False))
            return errors
        return []


def _asset_spec(entry: dict[str, Any]) -> AssetSpec:
    return AssetSpec(
        key=entry["key"],
        requires=dict(entry.get("requires") or {}),
        optional_requires=dict(entry.get("optional_requires") or {}),
        partitioned=entry.get("partitioning") is not None,
        resources=dict(entry.get("resources") or {}),
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _clean_schema(schema: Any, drop: str) -> Any:
    """Remove a framework field (`id` of resources/destinations, `resources` of asset schemas)."""
    if not isinstance(schema, dict) or drop not in (schema.get("properties") or {}):
        return schema
    cleaned = {**schema, "properties": {k: v for k, v in schema["properties"].items() if k != drop}}
    if drop in (cleaned.get("required") or []):
        cleaned["required"] = [r for r in cleaned["required"] if r != drop]
        if not cleaned["required"]:
            del cleaned["required"]
    return cleaned


def _composite_asset_path(source_cls: type, asset_key: str) -> str | None:
    from interloper.source.base import AssetRef

    for attr, value in vars(source_cls).items():
        if isinstance(value, AssetRef) and getattr(value.asset_cls, "key", None) == asset_key:
            return f"{source_cls.__module__}:{source_cls.__qualname__}.{attr}"
    return None


def _validator(key: str, cls: type, schema: dict[str, Any]) -> type[BaseModel] | None:
    model_fields = getattr(cls, "model_fields", None)
    if not isinstance(model_fields, dict):
        return None
    fields: dict[str, Any] = {}
    for name in schema.get("properties") or {}:
        info = model_fields.get(name)
        if name != "id" and info is not None:
            fields[name] = (info.annotation, info)
    extra: Literal["allow", "ignore", "forbid"] = "ignore"
    if getattr(cls, "model_config", {}).get("extra") in ("allow", "forbid"):
        extra = cls.model_config["extra"]  # type: ignore[attr-defined]
    config = ConfigDict(extra=extra, arbitrary_types_allowed=True)
    try:
        model: type[BaseModel] = create_model(f"{key}_config", __config__=config, **fields)
    except Exception as exc:  # an exotic field type: validate nothing rather than fail
        log.warning("no config validator for catalog entry %s: %s", key, _describe(exc))
        return None
    return model


def load_catalog(paths: list[str]) -> CatalogIndex:
    from interloper.asset.base import Asset
    from interloper.catalog import Catalog
    from interloper.destination.base import Destination
    from interloper.resource.base import Resource
    from interloper.source.base import Source
    from interloper.utils.imports import import_from_path

    component_types = (Source, Destination, Asset, Resource)
    index = CatalogIndex(paths=list(paths))
    components: dict[str, Any] = {}
    for path in paths:
        try:
            obj = import_from_path(path)
        except BaseException as exc:  # ImportError, SyntaxError, errors raised by the module itself
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            index.errors[path] = _describe(exc)
            continue
        if not isinstance(obj, type) or not issubclass(obj, component_types):
            index.errors[path] = "not an interloper component class (Source, Asset, Destination or Resource)"
            continue
        try:
            part = Catalog.from_paths([path]).components
        except Exception as exc:
            index.errors[path] = _describe(exc)
            continue
        for key, definition in part.items():
            if key == getattr(obj, "key", None):
                components[key] = definition
            else:
                components.setdefault(key, definition)
    for path, error in index.errors.items():
        log.error("catalog: cannot load %s: %s", path, error)

    for key, definition in components.items():
        entry: dict[str, Any] = definition.model_dump(mode="json")
        try:
            cls = import_from_path(entry["path"])
        except Exception as exc:
            index.errors[entry["path"]] = _describe(exc)
            log.error("catalog: cannot import %s: %s", entry["path"], index.errors[entry["path"]])
            continue
        index.classes[key] = cls
        kind = entry.get("kind")
        if kind not in ("source", "asset"):
            entry["config_schema"] = _clean_schema(entry.get("config_schema"), "id")
        if kind == "source":
            for asset in entry.get("assets") or []:
                asset["asset_schema"] = _clean_schema(asset.get("asset_schema"), "resources")
                composite = _composite_asset_path(cls, asset["key"])
                if composite:
                    asset["path"] = composite
        if kind == "asset":
            entry["asset_schema"] = _clean_schema(entry.get("asset_schema"), "resources")
        if kind != "asset" and isinstance(entry.get("config_schema"), dict):
            validator = _validator(key, cls, entry["config_schema"])
            if validator is not None:
                index.validators[key] = validator
        index.dump[key] = entry

    index.dump_bytes = _json(index.dump)
    index.entry_bytes = {key: _json(entry) for key, entry in index.dump.items()}
    kinds = {str(entry.get("kind")) for entry in index.dump.values()} | set(KINDS)
    index.kind_bytes = {kind: _json({k: e for k, e in index.dump.items() if e.get("kind") == kind}) for kind in kinds}
    index.resource_kinds = sorted(
        {str(e.get("kind")) for e in index.dump.values() if e.get("kind") not in NON_RESOURCE_KINDS}
    )
    log.info("catalog: %d components from %d paths (%d errors)", len(index.dump), len(paths), len(index.errors))
    return index
