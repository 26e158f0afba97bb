"""Invitation use cases, scoped to the caller's active organisation (except acceptance, where
the token designates the organisation)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Caller, Member
from icp_common.errors import Forbidden, InvalidInput, NotFound, TooManyRequests

from .. import events
from ..members import service as members_service
from ..organisations import service as organisations_service
from ..security import MAX_TOKEN_LENGTH, hash_token, new_invitation_token
from ..settings import AuthSettings
from . import repository
from .models import Invitation

AcceptOutcome = Literal["ok", "already_member"]


@dataclass(frozen=True)
class SendLimits:
    """How many invitation e-mails an organisation may send, and an address receive, per window."""

    per_organisation: int
    per_address: int
    window: timedelta

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> SendLimits:
        return cls(
            auth.invitations_per_organisation,
            auth.invitations_per_address,
            timedelta(seconds=auth.invitation_window_seconds),
        )


async def admit_send(session: AsyncSession, org_id: uuid.UUID, email: str, limits: SendLimits) -> None:
    """Count one more invitation e-mail, or refuse it (429 + Retry-After) over either limit."""
    await repository.lock_sending(session, org_id, email)
    counts = (
        (
            limits.per_organisation,
            "this organisation",
            await repository.recent_sends(session, limits.window, org_id=org_id),
        ),
        (limits.per_address, "this address", await repository.recent_sends(session, limits.window, email=email)),
    )
    for limit, what, (sent, wait) in counts:
        if sent >= limit:
            # Capped at the window: `wait` is measured from the oldest send's timestamp, which can lie
            # a fraction of a second further back than "now" at the database's clock edge.
            retry = min(max(1, math.ceil(wait)), math.ceil(limits.window.total_seconds()))
            raise TooManyRequests(
                f"Too many invitations sent to {what} recently; try again in {retry} seconds",
                headers={"Retry-After": str(retry)},
            )
    await repository.record_send(session, org_id, email, limits.window)


def same_address(a: str | None, b: str | None) -> bool:
    """E-mail addresses compared as the profiles index compares them (case-insensitive)."""
    return bool(a) and bool(b) and (a or "").strip().lower() == (b or "").strip().lower()


async def list_invitations(session: AsyncSession, caller: Member) -> list[Invitation]:
    """Every invitation of the organisation, expired ones included (their `expires_at` tells)."""
    return await repository.list_for_org(session, caller.org_id)


async def invite(
    session: AsyncSession, caller: Member, *, email: str, role: str, lifetime_days: int, limits: SendLimits
) -> Invitation:
    """Create an invitation and, in the same transaction, its `identity.invitation.created` event
    (without the token: the notifications service gets the link over gRPC, see links.py).

    Rate-limited per organisation and per address (429). An address that already has an
    invitation here gets this one instead (sent again with a new token and expiry), never two."""
    org_id = caller.org_id
    await admit_send(session, org_id, email, limits)
    await repository.delete_for_address(session, org_id, email)
    token = new_invitation_token()
    invitation = await repository.add(
        session,
        org_id,
        email=email,
        role=role,
        token_hash=hash_token(token),
        invited_by=caller.user,
        lifetime=timedelta(days=lifetime_days),
    )
    org = await organisations_service.get(session, org_id)
    inviter_email = caller.email or ""
    await events.publish(
        session,
        events.INVITATION_CREATED,
        events.InvitationCreated(
            event_id=events.new_event_id(),
            invitation_id=invitation.id,
            org_id=org_id,
            org_name=org.name if org is not None else "Unknown",
            email=invitation.email,
            role=invitation.role,
            inviter_name=caller.name or inviter_email,
            inviter_email=inviter_email,
            expires_at=invitation.expires_at,
        ),
    )
    return invitation


async def revoke(session: AsyncSession, caller: Member, invitation_id: uuid.UUID) -> None:
    if not await repository.delete_one(session, caller.org_id, invitation_id):
        raise NotFound("Invitation not found")


async def resend(
    session: AsyncSession, caller: Member, invitation_id: uuid.UUID, *, lifetime_days: int, limits: SendLimits
) -> Invitation:
    """Replace the invitation by a new one (new id, token and expiry; the old link stops working)."""
    org_id = caller.org_id
    old = await repository.get(session, org_id, invitation_id)
    if old is None:
        raise NotFound("Invitation not found")
    await repository.delete_one(session, org_id, invitation_id)
    return await invite(session, caller, email=old.email, role=old.role, lifetime_days=lifetime_days, limits=limits)


async def accept(session: AsyncSession, caller: Caller, token: str) -> AcceptOutcome:
    """Join the invitation's organisation (an existing membership keeps its role), consume the
    invitation and switch the caller's session (and last organisation) to that organisation.

    Only the invited address may accept: the token is a link in an e-mail, not a bearer pass.
    The caller's e-mail is their profile's (verified by Google, or asserted by the operator's
    dev login / CLI). A mismatch is 403 and, the transaction rolling back, the invitation stays."""
    caller.refuse_token()  # joining organisations is a session's act, not a script's
    invalid = InvalidInput("Invalid or expired invitation")
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise invalid
    invitation = await repository.claim_live_by_token_hash(session, hash_token(token))
    if invitation is None:
        raise invalid
    if not same_address(caller.email, invitation.email):
        raise Forbidden("This invitation was sent to another e-mail address: sign in with that address to accept it")
    added = await members_service.add_if_absent(session, invitation.organisation_id, caller.user, invitation.role)
    await organisations_service.enter(session, caller, invitation.organisation_id)
    return "ok" if added else "already_member"
