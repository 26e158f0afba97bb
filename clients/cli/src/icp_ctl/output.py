"""Rendering answers: `--output json` (the API's JSON, unchanged) or `table` (chosen columns)."""

from __future__ import annotations

import json
from typing import Any, TextIO

# The columns a table shows per kind of row (every field is in `--output json`).
COLUMNS: dict[str, tuple[str, ...]] = {
    "organisation": ("id", "name", "created_at"),
    "job": ("id", "name", "cron", "enabled", "partitioned", "next_run_at"),
    "run": ("id", "job_id", "partition_date", "status", "started_at", "completed_at"),
    "event": ("timestamp", "event_type", "asset_key", "message", "error"),
    "log": ("timestamp", "stream", "asset", "message"),
    "backfill": ("id", "job_id", "status", "start_date", "end_date", "partitions", "concurrency"),
    "token": ("id", "name", "role", "token_prefix", "expires_at", "last_used_at", "service_account"),
    "source": ("id", "key", "name", "created_at"),
    "destination": ("id", "key", "name", "created_at"),
    "asset": ("id", "key", "source_id", "materializable"),
}
_WIDTH = 60  # a longer cell (an error, a message) is cut in a table; json has it whole


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        value = json.dumps(value)
    text = " ".join(str(value).split())
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c.upper()), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def render(data: Any, kind: str, fmt: str, out: TextIO) -> None:
    """A row or a list of rows of `kind`."""
    if fmt == "json":
        out.write(json.dumps(data, indent=2) + "\n")
        return
    if isinstance(data, dict):
        width = max((len(k) for k in data), default=0)
        for key, value in data.items():
            out.write(f"{key.ljust(width)}  {cell(value)}\n")
        return
    rows = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    if not rows:
        out.write(f"(no {kind}s)\n")
        return
    out.write(table(rows, COLUMNS.get(kind, tuple(rows[0]))) + "\n")


def log_text(record: dict[str, Any]) -> str:
    """A log line's text, whatever the server names it."""
    for key in ("message", "line", "text"):
        if isinstance(record.get(key), str):
            return str(record[key])
    return ""
