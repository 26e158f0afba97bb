"""The accept link of an invitation, issued to the notifications service over gRPC.

The `identity.invitation.created` event carries no token (anyone able to read the IDENTITY
stream would otherwise hold a working link for a week): the notifications service asks for the
link when it sends the e-mail. Only the token's hash is stored, so each issue mints a new token
and replaces the hash; the previously issued link stops working, which is harmless because the
notifications service mails a link once per event (a retry after a failed send mails the new one)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.errors import NotFound

from ..security import hash_token, new_invitation_token
from .models import Invitation


@dataclass(frozen=True)
class IssuedLink:
    token: str
    expires_at: datetime


async def issue_link(session: AsyncSession, invitation_id: uuid.UUID) -> IssuedLink:
    """A new token for the pending (existing, unexpired) invitation, else NotFound."""
    token = new_invitation_token()
    stmt = (
        update(Invitation)
        .where(Invitation.id == invitation_id, Invitation.expires_at > func.now())
        .values(token_hash=hash_token(token))
        .returning(Invitation.expires_at)
    )
    expires_at = (await session.execute(stmt)).scalar_one_or_none()
    if expires_at is None:
        raise NotFound("Invitation not found")
    return IssuedLink(token, expires_at)
