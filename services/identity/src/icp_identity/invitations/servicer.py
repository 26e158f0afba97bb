"""identity.v1 IssueInvitationLink (thin): the notifications service's way to the accept link."""

from __future__ import annotations

import uuid
from typing import Any

from icp_common.db import unit_of_work
from icp_common.errors import NotFound
from icp_protos.interloper.identity.v1 import identity_pb2 as pb

from ..grpc_base import ServicerBase
from . import links


class InvitationsServicer(ServicerBase):
    async def IssueInvitationLink(
        self, request: pb.IssueInvitationLinkRequest, context: Any
    ) -> pb.IssueInvitationLinkResponse:
        try:
            invitation_id = uuid.UUID(request.invitation_id)
        except ValueError as exc:
            raise NotFound("Invitation not found") from exc
        async with unit_of_work(self.sessions) as db:
            issued = await links.issue_link(db, invitation_id)
        response = pb.IssueInvitationLinkResponse(token=issued.token)
        response.expires_at.FromDatetime(issued.expires_at)
        return response
