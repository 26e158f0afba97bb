"""`GET/PUT /api/organisations/{org_id}/alerts` (the gateway routes this sub-path of identity's
prefix here). Admins of the organisation only; `org_id` must be the caller's active organisation
(another id answers 404 like a missing organisation: nothing is revealed about it)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError

from icp_common.db import unit_of_work
from icp_common.errors import NotFound
from icp_common.identity import Identity
from icp_common.web import role

from . import rules
from .schemas import AlertRulesDocument

router = APIRouter(prefix="/api/organisations", tags=["alerts"])


def _same_org(identity: Identity, org_id: uuid.UUID) -> uuid.UUID:
    if identity.org_id is None or str(org_id) != str(identity.org_id):
        raise NotFound("Organisation not found")
    return org_id


@router.get("/{org_id}/alerts")
async def get_alerts(
    request: Request, org_id: uuid.UUID, identity: Annotated[Identity, Depends(role("admin"))]
) -> dict[str, Any]:
    _same_org(identity, org_id)
    async with unit_of_work(request.app.state.resources.sessions) as session:
        return rules.public(await rules.load(session, org_id))


@router.put("/{org_id}/alerts")
async def put_alerts(
    request: Request,
    org_id: uuid.UUID,
    document: AlertRulesDocument,
    identity: Annotated[Identity, Depends(role("admin"))],
) -> dict[str, Any]:
    _same_org(identity, org_id)
    settings = request.app.state.settings
    if len(document.rules) > settings.alerts.max_rules:
        raise RequestValidationError(
            [
                {
                    "type": "too_long",
                    "loc": ["body", "rules"],
                    "msg": f"At most {settings.alerts.max_rules} rules",
                    "input": len(document.rules),
                }
            ]
        )
    refused = rules.refused_urls(document, allow_private=settings.alerts.allow_private_targets)
    if refused:
        raise RequestValidationError(refused)
    user_id = uuid.UUID(identity.user_id) if identity.user_id else None
    async with unit_of_work(request.app.state.resources.sessions) as session:
        stored = await rules.replace(session, org_id, document, user_id)
    return rules.public(stored)
