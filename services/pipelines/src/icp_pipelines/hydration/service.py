"""Component specs (`{path, id, init}`, interloper-core's `ComponentSpec`) from database rows.

Everything is loaded with a fixed number of queries per call, scoped to one organisation, and
resource data is decrypted here (never stored in clear), with the reference to the platform's OAuth
client secret replaced by the secret when the hydrator has the OAuth settings (`oauth`: the worker
and the API's row counts; issue 15). `reconstruct()` of a spec imports the
catalog classes and instantiates them (run it in a thread: it is synchronous)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..assets import repository as assets_repository
from ..assets.models import Asset
from ..catalog.loader import CatalogIndex
from ..crypto import Cipher
from ..destinations import repository as destinations_repository
from ..oauth.secret_ref import resolve_connection
from ..oauth.settings import OAuthSettings
from ..resources import masking
from ..resources import repository as resources_repository
from ..resources import service as resources_service
from ..resources.models import Resource
from ..sources import repository as sources_repository
from ..sources.models import Source

Spec = dict[str, Any]
Bindings = dict[uuid.UUID, dict[str, uuid.UUID]]
Links = dict[uuid.UUID, list[uuid.UUID]]
Deps = dict[uuid.UUID, dict[str, str]]


class CatalogKeyError(LookupError):
    """A row references a key the catalog does not have (`Unknown <kind> key: <key>`)."""


def _one_or_many(specs: list[Spec]) -> Spec | list[Spec] | None:
    if not specs:
        return None
    return specs[0] if len(specs) == 1 else specs


@dataclass
class Hydrator:
    session: AsyncSession
    org_id: uuid.UUID
    catalog: CatalogIndex
    cipher: Cipher
    oauth: OAuthSettings | None = None
    secrets: set[str] | None = None  # when given: the decrypted secret values (masked in run logs)

    def _path(self, key: str, kind: str) -> str:
        entry = self.catalog.dump.get(key)
        if (
            entry is None
            or (kind == "resource" and entry.get("kind") in ("source", "asset", "destination"))
            or (kind != "resource" and entry.get("kind") != kind)
        ):
            raise CatalogKeyError(f"Unknown {kind} key: {key}")
        return str(entry["path"])

    async def resources(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Spec]:
        rows = await resources_repository.get_many(self.session, self.org_id, ids)
        return {
            r.id: {
                "path": self._path(r.key, "resource"),
                "id": str(r.id),
                "init": self._data(r),
            }
            for r in rows.values()
        }

    def _data(self, row: Resource) -> dict[str, Any]:
        data = resources_service.decrypt(self.cipher, row)
        schema = (self.catalog.dump.get(row.key) or {}).get("config_schema")
        if self.oauth is not None:
            data = resolve_connection(schema, data, self.oauth)
        if self.secrets is not None:
            self.secrets |= masking.secret_values(data, masking.secret_fields(schema))
        return data

    async def destinations(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Spec]:
        wanted = set(ids)
        rows = await destinations_repository.list_by_ids(self.session, self.org_id, wanted)
        bindings = await destinations_repository.bindings(self.session, self.org_id, wanted)
        resources = await self.resources({r for b in bindings.values() for r in b.values()})
        specs: dict[uuid.UUID, Spec] = {}
        for row in rows:
            slots = {slot: resources[r] for slot, r in bindings.get(row.id, {}).items() if r in resources}
            specs[row.id] = {
                "path": self._path(row.key, "destination"),
                "id": str(row.id),
                "init": {**(row.config or {}), "resources": slots},
            }
        return specs

    async def _asset_parts(
        self, rows: Sequence[Asset]
    ) -> tuple[
        dict[uuid.UUID, dict[str, uuid.UUID]], dict[uuid.UUID, list[uuid.UUID]], dict[uuid.UUID, dict[str, str]]
    ]:
        found = await assets_repository.parts(self.session, self.org_id, [r.id for r in rows])
        deps = {a: {param: str(up) for param, up in ups.items()} for a, ups in found.upstream.items()}
        return found.bindings, found.destinations, deps

    async def _asset_init(self, rows: Sequence[Asset]) -> dict[uuid.UUID, dict[str, Any]]:
        bindings, links, deps = await self._asset_parts(rows)
        resources = await self.resources({r for b in bindings.values() for r in b.values()})
        destinations = await self.destinations({d for ds in links.values() for d in ds})
        result: dict[uuid.UUID, dict[str, Any]] = {}
        for row in rows:
            init: dict[str, Any] = {**(row.config or {}), "id": str(row.id), "materializable": row.materializable}
            slots = {slot: resources[r] for slot, r in bindings.get(row.id, {}).items() if r in resources}
            if slots:
                init["resources"] = slots
            own = _one_or_many([destinations[d] for d in links.get(row.id, []) if d in destinations])
            if own is not None:
                init["destination"] = own
            if row.id in deps:
                init["deps"] = deps[row.id]
            result[row.id] = init
        return result

    async def source(self, source: Source, assets: Sequence[Asset]) -> Spec:
        """A source with exactly the given asset rows (their overrides, bindings and edges)."""
        bindings = (await sources_repository.bindings(self.session, self.org_id, [source.id])).get(source.id, {})
        links = (await sources_repository.destination_links(self.session, self.org_id, [source.id])).get(source.id, [])
        resources = await self.resources(bindings.values())
        destinations = await self.destinations(links)
        init: dict[str, Any] = {**(source.config or {})}
        slots = {slot: resources[r] for slot, r in bindings.items() if r in resources}
        if slots:
            init["resources"] = slots
        own = _one_or_many([destinations[d] for d in links if d in destinations])
        if own is not None:
            init["destination"] = own
        overrides = await self._asset_init(assets)
        init["assets"] = {row.key: overrides[row.id] for row in assets}
        return {"path": self._path(source.key, "source"), "id": str(source.id), "init": init}

    async def standalone_asset(self, asset: Asset) -> Spec:
        init = (await self._asset_init([asset]))[asset.id]
        asset_id = init.pop("id")
        return {"path": self._path(asset.key, "asset"), "id": asset_id, "init": init}


def reconstruct(spec: Spec) -> Any:
    """Import and instantiate a spec tree (synchronous)."""
    from interloper.component import ComponentSpec

    return ComponentSpec(**spec).reconstruct()
