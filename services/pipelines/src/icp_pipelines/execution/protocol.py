"""The worker <-> run process protocol, defined once for both sides: one JSON object per line over
the process's stdin (worker -> child) and stdout (child -> worker).

    worker -> child   InitMessage   {"t": "init", "catalog": [paths], "stdout_fd": n|null}  once
    child  -> worker  ReadyMessage  {"t": "ready", "pid": n}
    worker -> child   RunMessage    {"t": "run", "run_id", "org_id", "backfill_id",
                                     "partition": "YYYY-MM-DD"|null, "components": [spec, ...],
                                     "runner": {"type", "config"}}
    child  -> worker  EventMessage  {"t": "event", "type", "ts", "meta": {...}} ...
                      LogMessage    {"t": "log", "ts", "asset": key|null, "message"}  (Python
                                     `logging` of the run; its stdout/stderr are read from pipes)
                      DoneMessage   {"t": "done", "status": "success"|"failed", "error": str|null,
                                     "reported": bool (a run_completed/run_failed event was sent)}

The run process executes user code, so the worker trusts nothing it reads: `decode_reply` returns
only well-formed replies (anything else is None and dropped), and event fields are bounded on both
sides (`MAX_TEXT`). Imported by the run process at start: standard library only."""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, Required, TypedDict

# The event metadata a run process reports (other keys, e.g. source_id, are not stored).
EVENT_FIELDS = ("asset_id", "asset_key", "partition_or_window", "error", "traceback", "message", "level")
MAX_TEXT = 64 * 1024  # a reported or stored text field, at most
TRUNCATED = "... [truncated]"
# Written by the run process on its stdout and stderr after a run: the worker has read the run's
# output to here before it stores the run's end (the pipes are read apart from the protocol).
OUTPUT_MARK = b"\x1e\x1eicp-run-output-end\x1e\x1e\n"

MetaValue = str | int | float | bool


class InitMessage(TypedDict, total=False):
    t: Required[Literal["init"]]
    catalog: Required[list[str]]
    stdout_fd: int | None  # the pipe the run's stdout goes to (fd 1 is the protocol's)


class RunnerConfig(TypedDict):
    type: str
    config: dict[str, Any]


class RunMessage(TypedDict):
    t: Literal["run"]
    run_id: str
    org_id: str
    backfill_id: str | None
    partition: str | None
    components: list[dict[str, Any]]
    runner: RunnerConfig
    traceparent: NotRequired[str | None]  # the worker's span of the run (W3C), when tracing


class ReadyMessage(TypedDict):
    t: Literal["ready"]
    pid: int


class EventMessage(TypedDict):
    t: Literal["event"]
    type: str
    ts: str | None
    meta: dict[str, MetaValue]


class LogMessage(TypedDict):
    t: Literal["log"]
    ts: str | None
    asset: str | None
    message: str


class DoneMessage(TypedDict):
    t: Literal["done"]
    status: Literal["success", "failed"]
    error: str | None
    reported: bool


Command = InitMessage | RunMessage
Reply = ReadyMessage | EventMessage | LogMessage | DoneMessage


def truncate(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def done(status: Literal["success", "failed"], error: str | None = None, *, reported: bool = False) -> DoneMessage:
    return {"t": "done", "status": status, "error": error, "reported": reported}


def encode(message: Command | Reply) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def decode_command(line: bytes) -> Command | None:
    """A worker's message (the run process trusts its worker; only the kind is checked)."""
    message = json.loads(line)
    if isinstance(message, dict) and message.get("t") in ("init", "run"):
        return message  # type: ignore[return-value]
    return None


def decode_reply(line: bytes) -> Reply | None:
    """A run process's message, normalised; None if it is not one (malformed JSON raises ValueError)."""
    raw = json.loads(line)
    if not isinstance(raw, dict):
        return None
    kind = raw.get("t")
    if kind == "event":
        event_type, stamp, meta = raw.get("type"), raw.get("ts"), raw.get("meta") or {}
        if not isinstance(event_type, str) or not isinstance(meta, dict):
            return None
        return {"t": "event", "type": event_type, "ts": stamp if isinstance(stamp, str) else None, "meta": meta}
    if kind == "log":
        text, stamp, asset = raw.get("message"), raw.get("ts"), raw.get("asset")
        if not isinstance(text, str):
            return None
        return {
            "t": "log",
            "ts": stamp if isinstance(stamp, str) else None,
            "asset": truncate(asset, 512) if isinstance(asset, str) else None,
            "message": truncate(text),
        }
    if kind == "done":
        error = raw.get("error")
        status: Literal["success", "failed"] = "success" if raw.get("status") == "success" else "failed"
        return done(status, None if error is None else str(error), reported=bool(raw.get("reported")))
    if kind == "ready":
        pid = raw.get("pid")
        return {"t": "ready", "pid": pid if isinstance(pid, int) else 0}
    return None
