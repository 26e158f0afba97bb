"""Typed ids of the verified caller (the identity carries them as strings)."""

from __future__ import annotations

import uuid

from icp_common.errors import Unauthenticated
from icp_common.identity import Identity


def _uuid(value: str | None, what: str) -> uuid.UUID:
    if not value:
        raise Unauthenticated(f"No {what} in the caller identity")
    return uuid.UUID(value)


def user_id(identity: Identity) -> uuid.UUID:
    return _uuid(identity.user_id, "user")


def session_id(identity: Identity) -> uuid.UUID:
    return _uuid(identity.session_id, "session")


def org_id(identity: Identity) -> uuid.UUID:
    """The active organisation; call after require_role(), which guarantees one."""
    return _uuid(identity.org_id, "organisation")
