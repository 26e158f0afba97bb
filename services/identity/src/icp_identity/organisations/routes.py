"""`POST/GET /api/organisations` (spec 2.5); the collection is declared without a slash."""

from __future__ import annotations

from fastapi import APIRouter

from icp_common.caller import CallerDep

from ..deps import SessionDep
from . import service
from .schemas import OrganisationCreate, OrganisationRead

router = APIRouter(prefix="/api/organisations", tags=["organisations"])


@router.post("", status_code=201, response_model=OrganisationRead)
async def create_organisation(caller: CallerDep, body: OrganisationCreate, db: SessionDep) -> OrganisationRead:
    """Create an organisation (caller becomes admin) and switch the caller's session to it."""
    return OrganisationRead.model_validate(await service.create(db, caller, body.name))


@router.get("", response_model=list[OrganisationRead])
async def list_organisations(caller: CallerDep, db: SessionDep) -> list[OrganisationRead]:
    """Every organisation the caller is a member of."""
    return [OrganisationRead.model_validate(org) for org in await service.list_mine(db, caller)]
