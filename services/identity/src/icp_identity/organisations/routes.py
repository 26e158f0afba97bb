"""`POST/GET /api/organisations` (spec 2.5); the collection is declared without a slash."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from icp_common.caller import CallerDep
from icp_common.idempotency import IdempotencyKeyDep

from ..db import idempotency_keys
from ..deps import AuditDep, SessionDep
from . import service
from .schemas import OrganisationCreate, OrganisationRead

router = APIRouter(prefix="/api/organisations", tags=["organisations"])


@router.post("", status_code=201, response_model=OrganisationRead)
async def create_organisation(
    caller: CallerDep, key: IdempotencyKeyDep, body: OrganisationCreate, db: SessionDep, audit: AuditDep
) -> OrganisationRead | JSONResponse:
    """Create an organisation (caller becomes admin) and switch the caller's session to it.
    `Idempotency-Key` (per user: the caller's organisation changes with the answer): a retry
    within 24 h replays the first answer."""

    async def create() -> OrganisationRead:
        organisation = OrganisationRead.model_validate(await service.create(db, caller, body.name))
        await audit("organisations.create", "organisation", organisation.id, org_id=organisation.id)
        return organisation

    return await idempotency_keys.run(db, key, caller, create, per_organisation=False)


@router.get("", response_model=list[OrganisationRead])
async def list_organisations(caller: CallerDep, db: SessionDep) -> list[OrganisationRead]:
    """Every organisation the caller is a member of."""
    return [OrganisationRead.model_validate(org) for org in await service.list_mine(db, caller)]
