"""pipelines.v1 messages -> the JSON-safe dicts tools return to the model (ids as strings, times
as ISO-8601 in UTC, statuses as the REST API spells them, null for unset)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias

from google.protobuf import json_format
from google.protobuf.message import Message

from icp_protos.interloper.pipelines.v1 import pipelines_pb2 as pb

RunStatus: TypeAlias = pb.RunStatus.ValueType
Direction: TypeAlias = pb.LineageDirection.ValueType

RUN_STATUS: dict[RunStatus, str] = {
    pb.RUN_STATUS_QUEUED: "queued",
    pb.RUN_STATUS_PENDING: "pending",
    pb.RUN_STATUS_DISPATCHED: "dispatched",
    pb.RUN_STATUS_RUNNING: "running",
    pb.RUN_STATUS_SUCCESS: "success",
    pb.RUN_STATUS_FAILED: "failed",
    pb.RUN_STATUS_CANCELED: "canceled",
}
RUN_STATUS_BY_NAME = {v: k for k, v in RUN_STATUS.items()}
BACKFILL_STATUS = {
    pb.BACKFILL_STATUS_QUEUED: "queued",
    pb.BACKFILL_STATUS_RUNNING: "running",
    pb.BACKFILL_STATUS_SUCCESS: "success",
    pb.BACKFILL_STATUS_FAILED: "failed",
}
EXECUTION_STATUS = {
    pb.ASSET_EXECUTION_STATUS_QUEUED: "queued",
    pb.ASSET_EXECUTION_STATUS_RUNNING: "running",
    pb.ASSET_EXECUTION_STATUS_SUCCESS: "success",
    pb.ASSET_EXECUTION_STATUS_FAILED: "failed",
    pb.ASSET_EXECUTION_STATUS_CANCELED: "canceled",
    pb.ASSET_EXECUTION_STATUS_SKIPPED: "skipped",
}
KIND = {
    pb.COMPONENT_KIND_SOURCE: "source",
    pb.COMPONENT_KIND_ASSET: "asset",
    pb.COMPONENT_KIND_DESTINATION: "destination",
    pb.COMPONENT_KIND_CONNECTION: "connection",
    pb.COMPONENT_KIND_CONFIG: "config",
    pb.COMPONENT_KIND_RESOURCE: "resource",
}


def when(message: Message, field: str) -> datetime | None:
    """A Timestamp field as an aware datetime; None when unset."""
    if not message.HasField(field):
        return None
    value: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    return value


def iso(message: Message, field: str) -> str | None:
    value = when(message, field)
    return value.isoformat() if value is not None else None


def struct(message: Message, field: str) -> dict[str, Any] | None:
    if not message.HasField(field):
        return None
    value: dict[str, Any] = json_format.MessageToDict(getattr(message, field))
    return value


def none_if_empty(value: str) -> str | None:
    return value or None


def source(s: pb.Source) -> dict[str, Any]:
    return {
        "id": s.id,
        "key": s.key,
        "name": s.name,
        "config": struct(s, "config"),
        "resources": dict(s.resources),
        "destination_ids": list(s.destination_ids),
        "assets": [{"id": a.id, "key": a.key, "materializable": a.materializable} for a in s.assets],
        "asset_count": len(s.assets),
        "created_at": iso(s, "created_at"),
    }


def asset(a: pb.Asset) -> dict[str, Any]:
    return {
        "id": a.id,
        "key": a.key,
        "qualified_key": qualified(a.source_key, a.key),
        "source_id": none_if_empty(a.source_id),
        "source_key": none_if_empty(a.source_key),
        "materializable": a.materializable,
        "config": struct(a, "config"),
        "resources": dict(a.resources),
        "destination_ids": list(a.destination_ids),
        "created_at": iso(a, "created_at"),
    }


def destination(d: pb.Destination) -> dict[str, Any]:
    return {
        "id": d.id,
        "key": d.key,
        "name": none_if_empty(d.name),
        "config": struct(d, "config"),
        "resources": dict(d.resources),
        "created_at": iso(d, "created_at"),
    }


def job(j: pb.Job) -> dict[str, Any]:
    return {
        "id": j.id,
        "name": j.name,
        "cron": j.cron,
        "tags": list(j.tags),
        "enabled": j.enabled,
        "partitioned": j.partitioned,
        "backfill_days": j.backfill_days if j.HasField("backfill_days") else None,
        "source_ids": list(j.source_ids),
        "asset_ids": list(j.asset_ids),
        "last_run_at": iso(j, "last_run_at"),
        "next_run_at": iso(j, "next_run_at"),
        "created_at": iso(j, "created_at"),
    }


def duration_seconds(r: pb.Run) -> float | None:
    started, completed = when(r, "started_at"), when(r, "completed_at")
    if started is None or completed is None:
        return None
    return round((completed - started).total_seconds(), 3)


def run(r: pb.Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "job_id": none_if_empty(r.job_id),
        "backfill_id": none_if_empty(r.backfill_id),
        "partition_date": none_if_empty(r.partition_date),
        "status": RUN_STATUS.get(r.status, "unknown"),
        "started_at": iso(r, "started_at"),
        "completed_at": iso(r, "completed_at"),
        "created_at": iso(r, "created_at"),
        "duration_seconds": duration_seconds(r),
    }


def backfill(b: pb.Backfill) -> dict[str, Any]:
    return {
        "id": b.id,
        "job_id": none_if_empty(b.job_id),
        "status": BACKFILL_STATUS.get(b.status, "unknown"),
        "start_date": b.start_date,
        "end_date": b.end_date,
        "concurrency": b.concurrency,
        "fail_fast": b.fail_fast,
        "partitions": b.partitions,
        "started_at": iso(b, "started_at"),
        "completed_at": iso(b, "completed_at"),
        "created_at": iso(b, "created_at"),
    }


def event(e: pb.RunEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "event_type": e.event_type,
        "asset_id": none_if_empty(e.asset_id),
        "asset_key": none_if_empty(e.asset_key),
        "partition_or_window": none_if_empty(e.partition_or_window),
        "error": none_if_empty(e.error),
        "message": none_if_empty(e.message),
        "timestamp": iso(e, "timestamp"),
    }


def execution(x: pb.AssetExecution) -> dict[str, Any]:
    return {
        "asset_id": x.asset_id,
        "asset_key": none_if_empty(x.asset_key),
        "status": EXECUTION_STATUS.get(x.status, "unknown"),
        "started_at": iso(x, "started_at"),
        "completed_at": iso(x, "completed_at"),
    }


def catalog_entry(e: pb.CatalogEntry) -> dict[str, Any]:
    """A catalog definition (spec 7.2 shape, assets nested for sources)."""
    entry: dict[str, Any] = {
        "kind": KIND.get(e.kind, "unknown"),
        "key": e.key,
        "name": e.name,
        "description": e.description,
        "icon": none_if_empty(e.icon),
        "tags": list(e.tags),
    }
    if e.resources:
        entry["resources"] = dict(e.resources)
    if e.HasField("config_schema"):
        entry["config_schema"] = struct(e, "config_schema")
    if e.destinations:
        entry["destinations"] = list(e.destinations)
    if e.kind == pb.COMPONENT_KIND_ASSET:
        entry.update(asset_definition(e))
    if e.assets:
        entry["assets"] = [catalog_entry(a) for a in e.assets]
    return entry


def asset_definition(e: pb.CatalogEntry) -> dict[str, Any]:
    return {
        "source_key": none_if_empty(e.source_key),
        "qualified_key": qualified(e.source_key, e.key),
        "schema": struct(e, "asset_schema"),
        "partitioning": partitioning(e),
        "requires": dict(e.requires),
        "optional_requires": dict(e.optional_requires),
    }


def partitioning(e: pb.CatalogEntry) -> dict[str, Any] | None:
    if not e.HasField("partitioning"):
        return None
    p = e.partitioning
    return {"column": p.column, "allow_window": p.allow_window, "start_date": none_if_empty(p.start_date)}


def qualified(source_key: str, asset_key: str) -> str:
    return f"{source_key}.{asset_key}" if source_key else asset_key
