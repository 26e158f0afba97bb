"""`/api/organisations/invite` and `/api/organisations/invitations*` (spec 2.5), admins only,
scoped to the caller's active organisation (another organisation's invitation is 404)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from icp_common.caller import AdminCaller

from ..db import idempotency_keys
from ..deps import SessionDep, SettingsDep
from ..schemas import Status
from . import service
from .schemas import InvitationCreate, InvitationRead

router = APIRouter(prefix="/api/organisations", tags=["organisations"])


@router.get("/invitations", response_model=list[InvitationRead])
async def list_invitations(caller: AdminCaller, db: SessionDep) -> list[InvitationRead]:
    return [InvitationRead.model_validate(inv) for inv in await service.list_invitations(db, caller)]


@router.post("/invite", status_code=201, response_model=InvitationRead)
async def invite(
    caller: AdminCaller, body: InvitationCreate, db: SessionDep, settings: SettingsDep, request: Request
) -> InvitationRead | JSONResponse:
    """`Idempotency-Key` (per organisation): a retry replays the first answer, no second e-mail."""

    async def create() -> InvitationRead:
        invitation = await service.invite(
            db,
            caller,
            email=body.email,
            role=body.role,
            lifetime_days=settings.auth.invitation_expiry_days,
            limits=service.SendLimits.from_settings(settings.auth),
        )
        return InvitationRead.model_validate(invitation)

    return await idempotency_keys.run(db, request, caller.org_id, create, status_code=201)


@router.delete("/invitations/{invitation_id}", response_model=Status)
async def revoke_invitation(caller: AdminCaller, invitation_id: uuid.UUID, db: SessionDep) -> Status:
    await service.revoke(db, caller, invitation_id)
    return Status()


@router.post("/invitations/{invitation_id}/resend", response_model=Status)
async def resend_invitation(
    caller: AdminCaller, invitation_id: uuid.UUID, db: SessionDep, settings: SettingsDep
) -> Status:
    """Replace the invitation by a new one (new id, token, expiry) and send it again."""
    await service.resend(
        db,
        caller,
        invitation_id,
        lifetime_days=settings.auth.invitation_expiry_days,
        limits=service.SendLimits.from_settings(settings.auth),
    )
    return Status()
