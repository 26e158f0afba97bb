"""What every pipelines.v1 servicer method has at hand (`rpc`: the caller parsed and role-checked,
one unit of work), and proto conversion helpers."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any, TypeVar

from google.protobuf import struct_pb2, timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from icp_common.caller import Member, Role, member_of
from icp_common.db import unit_of_work
from icp_common.errors import Unprocessable
from icp_common.grpc import current_identity

from .catalog.loader import CatalogIndex
from .crypto import Cipher


class ServicerBase:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], catalog: CatalogIndex, cipher: Cipher) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.cipher = cipher


S = TypeVar("S", bound=ServicerBase)
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Body = Callable[[S, Req, Member, AsyncSession], Awaitable[Resp]]
Method = Callable[[S, Req, Any], Awaitable[Resp]]


def rpc(minimum: Role) -> Callable[[Body[S, Req, Resp]], Method[S, Req, Resp]]:
    """A servicer method: the caller is parsed and its role checked first (`member_of`, the REST
    routes' rule and precedence), then the body runs with the typed caller in one unit of work (the
    call's transaction). The body only translates proto <-> the service functions' values."""

    def wrap(body: Body[S, Req, Resp]) -> Method[S, Req, Resp]:
        @functools.wraps(body)
        async def method(self: S, request: Req, context: Any) -> Resp:
            caller = member_of(current_identity(), minimum)
            async with unit_of_work(self.sessions) as db:
                return await body(self, request, caller, db)

        return method

    return wrap


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
