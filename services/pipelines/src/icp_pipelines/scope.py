"""The caller's organisation as a UUID (after require_role, which guarantees one)."""

from __future__ import annotations

import uuid

from icp_common.errors import Unauthenticated
from icp_common.identity import Identity


def org_id(identity: Identity) -> uuid.UUID:
    if not identity.org_id:
        raise Unauthenticated("No organisation in the caller identity")
    return uuid.UUID(identity.org_id)
