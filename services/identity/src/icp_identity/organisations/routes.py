"""`POST/GET /api/organisations` (spec 2.5); the collection is declared without a slash."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from icp_common.caller import CallerDep

from ..db import idempotency_keys
from ..deps import SessionDep
from . import service
from .schemas import OrganisationCreate, OrganisationRead

router = APIRouter(prefix="/api/organisations", tags=["organisations"])


@router.post("", status_code=201, response_model=OrganisationRead)
async def create_organisation(
    caller: CallerDep, body: OrganisationCreate, db: SessionDep, request: Request
) -> OrganisationRead | JSONResponse:
    """Create an organisation (caller becomes admin) and switch the caller's session to it.
    `Idempotency-Key` (per user): a retry replays the first answer."""

    async def create() -> OrganisationRead:
        return OrganisationRead.model_validate(await service.create(db, caller, body.name))

    return await idempotency_keys.run(db, request, f"user:{caller.user_id}", create, status_code=201)


@router.get("", response_model=list[OrganisationRead])
async def list_organisations(caller: CallerDep, db: SessionDep) -> list[OrganisationRead]:
    """Every organisation the caller is a member of."""
    return [OrganisationRead.model_validate(org) for org in await service.list_mine(db, caller)]
