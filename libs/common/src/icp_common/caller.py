"""The caller, parsed once at the edge: the verified identity assertion (string fields, as signed)
becomes a typed `Caller` (UUIDs, a `Role`) in the route dependency or at the top of a servicer
method, so services take typed ids instead of re-parsing `identity.org_id` at every call site.

* `Caller`: any authenticated caller (its active organisation, if any, is optional).
* `Member`: a caller acting in its active organisation with at least a given role (the role check
  of `require_role` passed), so `org_id` and `role` are set.

An assertion whose ids are not UUIDs is refused as unauthenticated (401), never a 500.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends

from .errors import Forbidden, InvalidInput, Unauthenticated
from .identity import ROLE_RANK, Identity, require_authenticated, require_role
from .web import get_identity


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    def at_least(self, minimum: Role) -> bool:
        return ROLE_RANK[self.value] >= ROLE_RANK[minimum.value]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller. `user_id` is None only for the system (`Identity.system`)."""

    identity: Identity  # as verified (what the agent forwards on its tool calls)
    user_id: uuid.UUID | None
    session_id: uuid.UUID | None
    org_id: uuid.UUID | None  # the active organisation, if one is selected
    role: Role | None  # the role there; None when not a member
    email: str | None
    name: str | None

    @property
    def is_system(self) -> bool:
        return self.identity.state == "system"

    def refuse_token(self) -> None:
        """403 for a caller authenticated by an API token: what a leaked token must not do
        (mint tokens, manage members or invitations)."""
        if self.identity.is_token:
            raise Forbidden("Not allowed with an API token")

    @property
    def user(self) -> uuid.UUID:
        """The caller's user id, for the use cases only a user can perform (not the system)."""
        if self.user_id is None:
            raise Unauthenticated("No user in the caller identity")
        return self.user_id

    @property
    def session(self) -> uuid.UUID:
        if self.session_id is None:
            raise Unauthenticated("No session in the caller identity")
        return self.session_id


@dataclass(frozen=True, slots=True)
class Member(Caller):
    """A caller in its active organisation, with at least the role the edge required."""

    org_id: uuid.UUID
    role: Role


def _uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise Unauthenticated("Malformed caller identity") from exc


def _role(value: str | None) -> Role | None:
    try:
        return Role(value) if value else None
    except ValueError:
        return None  # an unknown role grants nothing (require_role refuses it too)


def caller_of(identity: Identity) -> Caller:
    """401 unless authenticated; the caller with typed ids."""
    require_authenticated(identity)
    return Caller(
        identity=identity,
        user_id=_uuid(identity.user_id),
        session_id=_uuid(identity.session_id),
        org_id=_uuid(identity.org_id),
        role=_role(identity.role),
        email=identity.email,
        name=identity.name,
    )


def member_of(identity: Identity, minimum: Role) -> Member:
    """The role check (`require_role`: 401 -> 400 -> 404 -> 403) and the member with typed ids."""
    require_role(identity, minimum.value)
    caller = caller_of(identity)
    if caller.org_id is None:  # only the system can pass the role check without an organisation
        raise InvalidInput("No organisation selected")
    return Member(
        identity=identity,
        user_id=caller.user_id,
        session_id=caller.session_id,
        org_id=caller.org_id,
        role=caller.role or Role.ADMIN,  # the system acts as an admin
        email=caller.email,
        name=caller.name,
    )


# ---- FastAPI dependencies -----------------------------------------------------------------------


async def _caller(identity: Annotated[Identity, Depends(get_identity)]) -> Caller:
    return caller_of(identity)


def member(minimum: Role) -> Callable[[Identity], Awaitable[Member]]:
    async def dependency(identity: Annotated[Identity, Depends(get_identity)]) -> Member:
        return member_of(identity, minimum)

    dependency.__name__ = f"require_{minimum.value}"
    return dependency


CallerDep = Annotated[Caller, Depends(_caller)]
ViewerCaller = Annotated[Member, Depends(member(Role.VIEWER))]
EditorCaller = Annotated[Member, Depends(member(Role.EDITOR))]
AdminCaller = Annotated[Member, Depends(member(Role.ADMIN))]
