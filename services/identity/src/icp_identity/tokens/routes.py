"""`/api/tokens`: API tokens of the caller's active organisation (sessions only: a token
cannot create, list or revoke tokens)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from ..deps import AuditDep, SessionDep, SessionViewerCaller
from . import service
from .schemas import TokenCreate, TokenCreated, TokenRead

router = APIRouter(prefix="/api/tokens", tags=["tokens"])


@router.post("", status_code=201, response_model=TokenCreated)
async def create_token(caller: SessionViewerCaller, body: TokenCreate, db: SessionDep, audit: AuditDep) -> TokenCreated:
    """The secret (`token`) is in this answer only; it is stored as a SHA-256 digest."""
    new = await service.create(
        db,
        caller,
        name=body.name,
        role=body.role,
        expires_in_days=body.expires_in_days,
        service_account=body.service_account,
    )
    await audit("tokens.create", "token", new.row.id)  # the id only: never the secret
    return TokenCreated(token=new.token, **TokenRead.model_validate(new.row).model_dump())


@router.get("", response_model=list[TokenRead])
async def list_tokens(caller: SessionViewerCaller, db: SessionDep) -> list[TokenRead]:
    return [TokenRead.model_validate(row) for row in await service.list_tokens(db, caller)]


@router.delete("/{token_id}", status_code=204, response_class=Response)
async def revoke_token(caller: SessionViewerCaller, token_id: str, db: SessionDep, audit: AuditDep) -> Response:
    """204; another organisation's, another member's (unless admin), unknown or malformed id: 404."""
    await service.revoke(db, caller, _uuid(token_id))
    await audit("tokens.revoke", "token", token_id)
    return Response(status_code=204)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
