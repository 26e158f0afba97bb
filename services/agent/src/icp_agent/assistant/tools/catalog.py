"""CatalogAgent's tools: catalog sources and their asset schemas, configured sources, destinations."""

from __future__ import annotations

import asyncio
from typing import Any

from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from .. import convert
from ..pipelines import ToolError
from .base import Toolbox, ToolFn, ToolResult, tool

MAX_MATCHES = 200


def field_type(prop: Any) -> str:
    """A JSON Schema property's type as one short string ("string", "integer|null", "array")."""
    if not isinstance(prop, dict):
        return "unknown"
    kind = prop.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        return "|".join(str(k) for k in kind)
    variants = prop.get("anyOf") or prop.get("oneOf")
    if isinstance(variants, list):
        return "|".join(field_type(v) for v in variants)
    return "object" if "properties" in prop else "unknown"


def properties(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The schema's properties by name, sorted (a Struct does not keep the declared order)."""
    props = (schema or {}).get("properties")
    return dict(sorted(props.items())) if isinstance(props, dict) else {}


class CatalogTools(Toolbox):
    def tools(self) -> list[ToolFn]:
        return [
            self.list_sources,
            self.get_source_detail,
            self.get_asset_schema,
            self.search_fields,
            self.compare_schemas,
            self.list_destinations,
        ]

    async def _catalog_sources(self) -> list[pb.CatalogEntry]:
        stub = self.pipelines.stub
        response = await self.pipelines.call(stub.ListCatalog, pb.ListCatalogRequest(kind=pb.COMPONENT_KIND_SOURCE))
        return list(response.entries)

    async def _source(self, source_key: str) -> pb.CatalogEntry:
        entries = await self._catalog_sources()
        for entry in entries:
            if entry.key == source_key:
                return entry
        known = ", ".join(sorted(e.key for e in entries)) or "none"
        raise ToolError(f"Unknown source '{source_key}' (catalog sources: {known})", "not_found")

    async def _asset(self, source_key: str, asset_key: str) -> tuple[pb.CatalogEntry, pb.CatalogEntry]:
        source = await self._source(source_key)
        for asset in source.assets:
            if asset.key == asset_key:
                return source, asset
        known = ", ".join(a.key for a in source.assets) or "none"
        raise ToolError(f"Source '{source_key}' has no asset '{asset_key}' (its assets: {known})", "not_found")

    @tool
    async def list_sources(self) -> ToolResult:
        """List the data sources of the catalog and which of them are configured in this organisation.

        Returns every catalog source (key, name, description, icon, tags, number of assets) with
        `configured` and the configured instances (id, name, assets, destinations), plus configured
        sources whose class is no longer in the catalog.
        """
        stub = self.pipelines.stub
        catalog, configured = await asyncio.gather(
            self._catalog_sources(), self.pipelines.call(stub.ListSources, pb.ListSourcesRequest())
        )
        instances: dict[str, list[dict[str, Any]]] = {}
        for source in configured.sources:
            instances.setdefault(source.key, []).append(convert.source(source))
        sources = []
        for entry in catalog:
            mine = instances.pop(entry.key, [])
            sources.append(
                {
                    "key": entry.key,
                    "name": entry.name,
                    "description": entry.description,
                    "icon": entry.icon or None,
                    "tags": list(entry.tags),
                    "catalog_asset_count": len(entry.assets),
                    "configured": bool(mine),
                    "instances": mine,
                }
            )
        for key, mine in instances.items():
            sources.append(
                {"key": key, "name": mine[0]["name"], "in_catalog": False, "configured": True, "instances": mine}
            )
        return {
            "count": len(sources),
            "configured_count": sum(1 for s in sources if s["configured"]),
            "sources": sources,
        }

    @tool
    async def get_source_detail(self, source_key: str) -> ToolResult:
        """Get the full catalog definition of one source: configuration schema, resources, and its
        assets with their schemas, partitioning and dependencies.

        Args:
          source_key: Catalog key of the source, e.g. "demo_source".
        """
        return {"source": convert.catalog_entry(await self._source(source_key))}

    @tool
    async def get_asset_schema(self, source_key: str, asset_key: str) -> ToolResult:
        """Get the output schema of one asset of a catalog source, with its partitioning, tags and
        required/optional upstream assets.

        Args:
          source_key: Catalog key of the source.
          asset_key: Key of the asset within the source.
        """
        _, asset = await self._asset(source_key, asset_key)
        return {
            "source_key": source_key,
            "asset_key": asset_key,
            "qualified_key": convert.qualified(source_key, asset_key),
            "name": asset.name,
            "description": asset.description,
            "schema": convert.struct(asset, "asset_schema"),
            "partitioning": convert.partitioning(asset),
            "tags": list(asset.tags),
            "requires": dict(asset.requires),
            "optional_requires": dict(asset.optional_requires),
        }

    @tool
    async def search_fields(self, query: str) -> ToolResult:
        """Search the fields of every source asset schema by name or description (case-insensitive
        substring).

        Args:
          query: Text to look for, e.g. "email" or "revenue".
        """
        needle = query.strip().lower()
        if not needle:
            raise ToolError("query must not be empty")
        matches: list[dict[str, Any]] = []
        for source in await self._catalog_sources():
            for asset in source.assets:
                for name, prop in properties(convert.struct(asset, "asset_schema")).items():
                    description = prop.get("description", "") if isinstance(prop, dict) else ""
                    if needle in name.lower() or needle in str(description).lower():
                        matches.append(
                            {
                                "source_key": source.key,
                                "asset_key": asset.key,
                                "qualified_key": convert.qualified(source.key, asset.key),
                                "field_name": name,
                                "field_type": field_type(prop),
                                "description": description or None,
                            }
                        )
        return {
            "query": query,
            "match_count": len(matches),
            "matches": matches[:MAX_MATCHES],
            "truncated": len(matches) > MAX_MATCHES,
        }

    @tool
    async def compare_schemas(
        self, source_key_a: str, asset_key_a: str, source_key_b: str, asset_key_b: str
    ) -> ToolResult:
        """Compare the output schemas of two assets: shared fields (and whether their types match)
        and the fields only one of them has.

        Args:
          source_key_a: Source of the first asset.
          asset_key_a: Key of the first asset.
          source_key_b: Source of the second asset.
          asset_key_b: Key of the second asset.
        """
        _, a = await self._asset(source_key_a, asset_key_a)
        _, b = await self._asset(source_key_b, asset_key_b)
        props_a = properties(convert.struct(a, "asset_schema"))
        props_b = properties(convert.struct(b, "asset_schema"))
        shared = [
            {
                "field": name,
                "type_a": field_type(props_a[name]),
                "type_b": field_type(props_b[name]),
                "type_match": field_type(props_a[name]) == field_type(props_b[name]),
            }
            for name in props_a
            if name in props_b
        ]
        only_a = [name for name in props_a if name not in props_b]
        only_b = [name for name in props_b if name not in props_a]
        return {
            "asset_a": convert.qualified(source_key_a, asset_key_a),
            "asset_b": convert.qualified(source_key_b, asset_key_b),
            "shared_count": len(shared),
            "only_a_count": len(only_a),
            "only_b_count": len(only_b),
            "shared_fields": shared,
            "only_in_a": only_a,
            "only_in_b": only_b,
        }

    @tool
    async def list_destinations(self) -> ToolResult:
        """List the destinations configured in this organisation (where asset data is written)."""
        stub = self.pipelines.stub
        response = await self.pipelines.call(stub.ListDestinations, pb.ListDestinationsRequest())
        destinations = [convert.destination(d) for d in response.destinations]
        return {"count": len(destinations), "destinations": destinations}
