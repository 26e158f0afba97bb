"""The two timestamp formats of the public contract (spec 1.5, 5.2).

* REST bodies of resources, sources, ..., events: Python `str(datetime)`, e.g.
  `2026-11-24 23:21:50.055191+00:00` (database sessions run in UTC).
* Realtime records: PostgreSQL's JSON rendering, e.g. `2026-11-24T23:22:11.431316+00:00`
  (trailing zeros of the fraction dropped, no fraction when zero)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import PlainSerializer


def db_time(value: datetime | None) -> str | None:
    return None if value is None else str(value)


def pg_json_time(value: datetime) -> str:
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        base += "." + f"{value.microsecond:06d}".rstrip("0")
    offset = value.strftime("%z") or "+0000"
    hours, minutes = offset[:3], offset[3:5]
    seconds = offset[5:7]
    return f"{base}{hours}:{minutes}" + (f":{seconds}" if seconds and seconds != "00" else "")


def pg_json_value(value: Any) -> Any:
    """A column value as PostgreSQL's row_to_json renders it."""
    if isinstance(value, datetime):
        return pg_json_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


DbTime = Annotated[datetime | None, PlainSerializer(db_time, return_type=str | None)]
