"""pipelines.v1 ListCatalog (thin over the prebuilt catalog)."""

from __future__ import annotations

from typing import Any

from icp_common.grpc import current_identity
from icp_common.identity import require_authenticated
from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

from ..grpc_base import ServicerBase

KIND_TO_PROTO = {
    "source": pb.COMPONENT_KIND_SOURCE,
    "asset": pb.COMPONENT_KIND_ASSET,
    "destination": pb.COMPONENT_KIND_DESTINATION,
    "connection": pb.COMPONENT_KIND_CONNECTION,
    "config": pb.COMPONENT_KIND_CONFIG,
    "resource": pb.COMPONENT_KIND_RESOURCE,
}
PROTO_TO_KIND = {v: k for k, v in KIND_TO_PROTO.items()}


def entry_to_proto(entry: dict[str, Any]) -> pb.CatalogEntry:
    message = pb.CatalogEntry(
        kind=KIND_TO_PROTO.get(str(entry.get("kind")), pb.COMPONENT_KIND_UNSPECIFIED),
        key=entry.get("key") or "",
        path=entry.get("path") or "",
        name=entry.get("name") or "",
        icon=entry.get("icon") or "",
        description=entry.get("description") or "",
        tags=list(entry.get("tags") or []),
        resources=dict(entry.get("resources") or {}),
        destinations=list(entry.get("destinations") or []),
        source_key=entry.get("source_key") or "",
        requires=dict(entry.get("requires") or {}),
        optional_requires=dict(entry.get("optional_requires") or {}),
        provider=entry.get("provider") or "",
        assets=[entry_to_proto(a) for a in entry.get("assets") or []],
    )
    if isinstance(entry.get("config_schema"), dict):
        message.config_schema.update(entry["config_schema"])
    if isinstance(entry.get("asset_schema"), dict):
        message.asset_schema.update(entry["asset_schema"])
    partitioning = entry.get("partitioning")
    if isinstance(partitioning, dict):
        message.partitioning.CopyFrom(
            pb.Partitioning(
                column=partitioning.get("column") or "",
                allow_window=bool(partitioning.get("allow_window")),
                start_date=str(partitioning.get("start_date") or ""),
            )
        )
    return message


class CatalogServicer(ServicerBase):
    async def ListCatalog(self, request: pb.ListCatalogRequest, context: Any) -> pb.ListCatalogResponse:
        require_authenticated(current_identity())
        kind = PROTO_TO_KIND.get(request.kind)
        entries = [e for e in self.catalog.dump.values() if kind is None or e.get("kind") == kind]
        return pb.ListCatalogResponse(entries=[entry_to_proto(e) for e in entries])
