"""LineageAgent's tools: upstream/downstream dependencies, full lineage, impact analysis."""

from __future__ import annotations

import asyncio
from typing import Any

from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from .. import convert
from ..pipelines import ToolError
from .base import Toolbox, ToolFn, ToolResult, tool

DIRECTIONS = {"upstream": pb.LINEAGE_DIRECTION_UPSTREAM, "downstream": pb.LINEAGE_DIRECTION_DOWNSTREAM}
STANDALONE = "(standalone)"


def node_dict(node: pb.LineageNode) -> dict[str, Any]:
    return {
        "asset_id": node.asset_id,
        "asset_key": node.asset_key,
        "qualified_key": convert.qualified(node.source_key, node.asset_key),
        "source_id": node.source_id or None,
        "source_key": node.source_key or None,
        "depth": node.depth,
    }


def edge_dict(edge: pb.LineageEdge) -> dict[str, Any]:
    return {"asset_id": edge.asset_id, "upstream_asset_id": edge.upstream_asset_id, "param_name": edge.param_name}


class LineageTools(Toolbox):
    def tools(self) -> list[ToolFn]:
        return [
            self.get_upstream,
            self.get_downstream,
            self.get_full_lineage,
            self.impact_analysis,
            self.cross_source_dependencies,
        ]

    async def _lineage(self, asset_id: str, direction: convert.Direction, max_depth: int) -> pb.GetLineageResponse:
        request = pb.GetLineageRequest(asset_id=asset_id.strip(), direction=direction, max_depth=max_depth)
        return await self.pipelines.call(self.pipelines.stub.GetLineage, request)

    @tool
    async def get_upstream(self, asset_id: str) -> ToolResult:
        """List the assets this asset reads from directly (its direct upstream dependencies).

        Args:
          asset_id: Id (UUID) of the asset.
        """
        result = await self._lineage(asset_id, pb.LINEAGE_DIRECTION_UPSTREAM, 1)
        nodes = {n.asset_id: node_dict(n) for n in result.nodes}
        upstream = []
        for edge in result.edges:
            if edge.asset_id == result.asset.id and edge.upstream_asset_id in nodes:
                node = nodes[edge.upstream_asset_id]
                upstream.append({"upstream_asset_id": edge.upstream_asset_id, "param_name": edge.param_name, **node})
        return {
            "asset_id": result.asset.id,
            "asset_key": convert.qualified(result.asset.source_key, result.asset.key),
            "upstream": upstream,
        }

    @tool
    async def get_downstream(self, asset_id: str) -> ToolResult:
        """List the assets that read from this asset directly (its direct downstream dependents).

        Args:
          asset_id: Id (UUID) of the asset.
        """
        result = await self._lineage(asset_id, pb.LINEAGE_DIRECTION_DOWNSTREAM, 1)
        nodes = {n.asset_id: node_dict(n) for n in result.nodes}
        downstream = []
        for edge in result.edges:
            if edge.upstream_asset_id == result.asset.id and edge.asset_id in nodes:
                downstream.append({"param_name": edge.param_name, **nodes[edge.asset_id]})
        return {
            "asset_id": result.asset.id,
            "asset_key": convert.qualified(result.asset.source_key, result.asset.key),
            "downstream": downstream,
        }

    @tool
    async def get_full_lineage(self, asset_id: str, direction: str = "upstream") -> ToolResult:
        """Walk the whole lineage of an asset in one direction: every asset reached, with its
        distance (depth) from the starting asset, and the edges between them.

        Args:
          asset_id: Id (UUID) of the starting asset.
          direction: "upstream" (what it depends on) or "downstream" (what depends on it).
        """
        if direction not in DIRECTIONS:
            raise ToolError("direction must be 'upstream' or 'downstream'")
        result = await self._lineage(asset_id, DIRECTIONS[direction], 0)
        lineage = sorted((node_dict(n) for n in result.nodes), key=lambda n: (n["depth"], n["qualified_key"]))
        return {
            "asset_id": result.asset.id,
            "asset_key": convert.qualified(result.asset.source_key, result.asset.key),
            "direction": direction,
            "lineage_count": len(lineage),
            "lineage": lineage,
            "edges": [edge_dict(e) for e in result.edges],
        }

    @tool
    async def impact_analysis(self, asset_id: str) -> ToolResult:
        """Which assets would be affected if this asset changed or failed: everything downstream,
        grouped by source, with the leaf outputs (affected assets nothing else depends on).

        Args:
          asset_id: Id (UUID) of the asset.
        """
        result = await self._lineage(asset_id, pb.LINEAGE_DIRECTION_DOWNSTREAM, 0)
        by_source: dict[str, list[dict[str, Any]]] = {}
        for node in sorted(result.nodes, key=lambda n: (n.depth, n.asset_key)):
            by_source.setdefault(node.source_key or STANDALONE, []).append(node_dict(node))
        feeding = {e.upstream_asset_id for e in result.edges}
        leaves = [node_dict(n) for n in result.nodes if n.asset_id not in feeding]
        return {
            "asset_id": result.asset.id,
            "asset_key": convert.qualified(result.asset.source_key, result.asset.key),
            "total_affected": len(result.nodes),
            "by_source": by_source,
            "leaf_outputs": leaves,
        }

    @tool
    async def cross_source_dependencies(self) -> ToolResult:
        """List the dependencies that cross sources: an asset of one source (or a standalone asset)
        reading an asset of another source."""
        stub = self.pipelines.stub
        deps, assets = await asyncio.gather(
            self.pipelines.call(stub.ListDependencies, pb.ListDependenciesRequest()),
            self.pipelines.call(stub.ListAssets, pb.ListAssetsRequest()),
        )
        by_id = {a.id: a for a in assets.assets}
        crossing = []
        for edge in deps.edges:
            down, up = by_id.get(edge.asset_id), by_id.get(edge.upstream_asset_id)
            if down is None or up is None or down.source_id == up.source_id:
                continue
            crossing.append(
                {
                    "downstream_asset_id": down.id,
                    "downstream": convert.qualified(down.source_key, down.key),
                    "upstream_asset_id": up.id,
                    "upstream": convert.qualified(up.source_key, up.key),
                    "param_name": edge.param_name,
                }
            )
        return {"cross_source_count": len(crossing), "dependencies": crossing}
