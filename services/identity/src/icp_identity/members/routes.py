"""`/api/organisations/members*` (spec 2.5), scoped to the caller's active organisation."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from icp_common.caller import ViewerCaller

from ..deps import AuditDep, SessionAdminCaller, SessionDep
from ..schemas import Status
from . import service
from .schemas import MemberRead

router = APIRouter(prefix="/api/organisations", tags=["organisations"])


@router.get("/members", response_model=list[MemberRead])
async def list_members(caller: ViewerCaller, db: SessionDep) -> list[MemberRead]:
    return [MemberRead.model_validate(row) for row in await service.list_members(db, caller)]


@router.delete("/members/{user_id}", response_model=Status)
async def remove_member(caller: SessionAdminCaller, user_id: uuid.UUID, db: SessionDep, audit: AuditDep) -> Status:
    await service.remove_member(db, caller, user_id)
    await audit("members.remove", "user", user_id)
    return Status()
