"""Profile use cases: find or create the profile behind a sign-in."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.errors import Conflict

from . import repository
from .models import Profile


async def get(session: AsyncSession, user_id: uuid.UUID) -> Profile | None:
    return await repository.get(session, user_id)


async def get_or_create_by_email(session: AsyncSession, email: str, name: str | None) -> Profile:
    """The profile with this e-mail, created on first use (dev login, CreateSession, CLI)."""
    profile = await repository.get_by_email(session, email)
    if profile is not None:
        return profile
    return await repository.add(session, email=email, name=name or None)


async def upsert_google(
    session: AsyncSession,
    *,
    google_id: str,
    email: str,
    name: str | None,
    avatar_url: str | None,
    link_by_email: bool = False,
) -> Profile:
    """The profile keyed by Google's user id (the provider's subject); e-mail, name and picture
    are refreshed on every login. `email` is one Google verified.

    A profile created earlier for the same e-mail by dev login or the CLI (no Google account yet)
    is taken over only where the deployment allows linking verified e-mails
    (INTERLOPER_AUTH_LINK_VERIFIED_EMAILS); otherwise the sign-in is refused, never silently
    merged into someone else's account."""
    profile = await repository.get_by_google_id(session, google_id)
    if profile is None:
        profile = await repository.get_by_email(session, email, without_google_id=True)
        if profile is None:
            return await repository.add(session, email=email, name=name, google_id=google_id, avatar_url=avatar_url)
        if not link_by_email or await repository.has_unverified_oidc_identity(session, profile.id):
            raise Conflict(
                "An account with this e-mail address already exists and is not linked to this Google account; "
                "ask an administrator to allow linking"
            )
        profile.google_id = google_id
    profile.email = email
    profile.name = name
    profile.avatar_url = avatar_url
    await session.flush()
    return profile


LINK_REFUSED = (
    "An account with this e-mail address already exists and is not linked to this sign-in; "
    "ask an administrator to allow linking"
)


async def upsert_oidc(
    session: AsyncSession,
    *,
    issuer: str,
    subject: str,
    email: str,
    email_verified: bool,
    name: str | None,
    avatar_url: str | None,
    link_by_email: bool = False,
) -> Profile:
    """The profile linked to the provider's `(issuer, subject)`; e-mail, name and picture are
    refreshed on every sign-in.

    A first sign-in whose e-mail already belongs to a profile joins it only where the
    deployment allows linking (INTERLOPER_AUTH_LINK_VERIFIED_EMAILS), this provider verified the
    e-mail, and every sign-in already on that profile verified it too (Google always does);
    otherwise it is refused: an e-mail alone never hands over an account."""
    identity = await repository.get_oidc_identity(session, issuer, subject)
    if identity is not None:
        profile = await repository.get(session, identity.profile_id)
        assert profile is not None  # ON DELETE CASCADE: an identity never outlives its profile
        identity.email, identity.email_verified = email, email_verified
    else:
        profile = await repository.get_by_email(session, email)
        if profile is None:
            profile = await repository.add(session, email=email, name=name, avatar_url=avatar_url)
        elif not (
            link_by_email and email_verified and not await repository.has_unverified_oidc_identity(session, profile.id)
        ):
            raise Conflict(LINK_REFUSED)
        await repository.add_oidc_identity(
            session, profile.id, issuer=issuer, subject=subject, email=email, email_verified=email_verified
        )
    profile.email = email
    profile.name = name or profile.name
    profile.avatar_url = avatar_url or profile.avatar_url
    await session.flush()
    return profile


async def set_last_organisation(session: AsyncSession, user_id: uuid.UUID, org_id: uuid.UUID) -> None:
    await repository.set_last_organisation(session, user_id, org_id)
