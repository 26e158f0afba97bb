"""FastAPI dependencies of the pipelines service: unit of work, settings, catalog, cipher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.db import unit_of_work
from icp_common.identity import Identity
from icp_common.outbox import OutboxMessage
from icp_common.web import get_identity

from .catalog.loader import CatalogIndex
from .crypto import Cipher
from .db import auditor
from .settings import Settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent (scope="function")."""
    sessions = request.app.state.resources.sessions
    async with unit_of_work(sessions) as session:
        yield session


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_catalog(request: Request) -> CatalogIndex:
    catalog: CatalogIndex = request.app.state.catalog
    return catalog


async def get_cipher(request: Request) -> Cipher:
    cipher: Cipher = request.app.state.cipher
    return cipher


SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[CatalogIndex, Depends(get_catalog)]
CipherDep = Annotated[Cipher, Depends(get_cipher)]

T = TypeVar("T")


class Audit:
    """Records an audit entry of this request in its transaction: `await audit("jobs.update",
    "job", job_id)` (icp_common.audit; never pass secrets, only ids)."""

    __slots__ = ("identity", "request", "session")

    def __init__(self, session: AsyncSession, identity: Identity, request: Request) -> None:
        self.session, self.identity, self.request = session, identity, request

    async def __call__(self, action: str, target_type: str, target_id: object) -> None:
        target = str(target_id) if target_id is not None else None
        await auditor.record(self.session, self.identity, self.request, action, target_type, target)

    def message(self, action: str, target_type: str, target_id: object) -> OutboxMessage:
        """The entry as an outbox message, for a write that enqueues its own messages in one
        statement (the run trigger)."""
        target = str(target_id) if target_id is not None else None
        return auditor.message(self.identity, self.request, action, target_type, target)

    def after(self, action: str, target_type: str, make: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """`make`, then an entry naming the `id` of what it returned (a create)."""

        async def run() -> T:
            result = await make()
            await self(action, target_type, getattr(result, "id", None))
            return result

        return run


async def get_audit(request: Request, db: SessionDep, identity: Annotated[Identity, Depends(get_identity)]) -> Audit:
    return Audit(db, identity, request)


AuditDep = Annotated[Audit, Depends(get_audit)]
