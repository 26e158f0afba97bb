"""identity.v1 ListMembers (thin): the members of the caller's active organisation."""

from __future__ import annotations

from typing import Any

from icp_common.caller import Role, member_of
from icp_common.db import unit_of_work
from icp_common.grpc import current_identity
from icp_common.identity import require_authenticated
from icp_protos.interloper.identity.v1 import identity_pb2 as pb

from ..errors import NoOrganisationSelected
from ..grpc_base import ServicerBase
from . import service


class MembersServicer(ServicerBase):
    async def ListMembers(self, request: pb.ListMembersRequest, context: Any) -> pb.ListMembersResponse:
        identity = require_authenticated(current_identity())
        if not identity.org_id:
            raise NoOrganisationSelected()
        caller = member_of(identity, Role.VIEWER)
        async with unit_of_work(self.sessions) as db:
            rows = await service.list_members(db, caller)
        return pb.ListMembersResponse(
            members=[
                pb.Member(
                    user_id=str(r.id), email=r.email, name=r.name or "", role=r.role, avatar_url=r.avatar_url or ""
                )
                for r in rows
            ]
        )
