"""`/api/organisations/invite` and `/api/organisations/invitations*` (spec 2.5), admins only,
scoped to the caller's active organisation (another organisation's invitation is 404)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from icp_common.idempotency import IdempotencyKeyDep

from ..db import idempotency_keys
from ..deps import AuditDep, SessionAdminCaller, SessionDep, SettingsDep
from ..schemas import Status
from . import service
from .schemas import InvitationCreate, InvitationRead

router = APIRouter(prefix="/api/organisations", tags=["organisations"])


@router.get("/invitations", response_model=list[InvitationRead])
async def list_invitations(caller: SessionAdminCaller, db: SessionDep) -> list[InvitationRead]:
    return [InvitationRead.model_validate(inv) for inv in await service.list_invitations(db, caller)]


@router.post("/invite", status_code=201, response_model=InvitationRead)
async def invite(
    caller: SessionAdminCaller,
    key: IdempotencyKeyDep,
    body: InvitationCreate,
    db: SessionDep,
    settings: SettingsDep,
    audit: AuditDep,
) -> InvitationRead | JSONResponse:
    """`Idempotency-Key` (per organisation and user): a retry within 24 h replays the first answer,
    no second e-mail."""

    async def create() -> InvitationRead:
        invitation = await service.invite(
            db,
            caller,
            email=body.email,
            role=body.role,
            lifetime_days=settings.auth.invitation_expiry_days,
            limits=service.SendLimits.from_settings(settings.auth),
        )
        await audit("invitations.create", "invitation", invitation.id)  # not the token nor the address
        return InvitationRead.model_validate(invitation)

    return await idempotency_keys.run(db, key, caller, create)


@router.delete("/invitations/{invitation_id}", response_model=Status)
async def revoke_invitation(
    caller: SessionAdminCaller, invitation_id: uuid.UUID, db: SessionDep, audit: AuditDep
) -> Status:
    await service.revoke(db, caller, invitation_id)
    await audit("invitations.revoke", "invitation", invitation_id)
    return Status()


@router.post("/invitations/{invitation_id}/resend", response_model=Status)
async def resend_invitation(
    caller: SessionAdminCaller,
    invitation_id: uuid.UUID,
    key: IdempotencyKeyDep,
    db: SessionDep,
    settings: SettingsDep,
    audit: AuditDep,
) -> Status | JSONResponse:
    """Replace the invitation by a new one (new id, token, expiry) and send it again.
    `Idempotency-Key` as for an invitation: a retry replays `{"status": "ok"}` instead of sending
    again (without one, a retry is 404: the replaced invitation is gone)."""

    async def resend() -> Status:
        await service.resend(
            db,
            caller,
            invitation_id,
            lifetime_days=settings.auth.invitation_expiry_days,
            limits=service.SendLimits.from_settings(settings.auth),
        )
        await audit("invitations.resend", "invitation", invitation_id)
        return Status()

    return await idempotency_keys.run(db, key, caller, resend)
