"""What every pipelines.v1 servicer method has at hand, and proto conversion helpers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from icp_common.errors import Unprocessable

from .catalog.loader import CatalogIndex
from .crypto import Cipher


class ServicerBase:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], catalog: CatalogIndex, cipher: Cipher) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.cipher = cipher


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise Unprocessable(f"{field} is not a valid UUID: '{value}'") from exc


def optional_id(value: str, field: str) -> uuid.UUID | None:
    return parse_id(value, field) if value else None


def parse_date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise Unprocessable(f"{field} is not a date (YYYY-MM-DD): '{value}'") from exc


def struct(value: dict[str, Any] | None) -> struct_pb2.Struct | None:
    if value is None:
        return None
    message = struct_pb2.Struct()
    message.update(value)
    return message


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def text(value: object | None) -> str:
    return "" if value is None else str(value)
