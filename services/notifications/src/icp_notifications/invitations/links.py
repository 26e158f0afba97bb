"""The accept link of an invitation, asked from the identity service when the e-mail is sent
(identity.v1 IssueInvitationLink). Events carry no token: nothing in the IDENTITY stream opens
an invitation, and a token in a forged event is never mailed."""

from __future__ import annotations

import uuid
from typing import Protocol

import grpc

from icp_common.grpc import InternalClient
from icp_protos.interloper.identity.v1 import identity_pb2 as pb
from icp_protos.interloper.identity.v1 import identity_pb2_grpc


class LinkUnavailable(Exception):
    """Identity could not be asked (down, timeout): retry later."""


class InvitationLinks(Protocol):
    async def issue(self, invitation_id: uuid.UUID) -> str | None:
        """A working token for the invitation, or None when it is no longer pending."""
        ...


class GrpcInvitationLinks:
    def __init__(self, client: InternalClient) -> None:
        self.client = client
        self.stub = identity_pb2_grpc.IdentityServiceStub(client.channel)

    async def issue(self, invitation_id: uuid.UUID) -> str | None:
        request = pb.IssueInvitationLinkRequest(invitation_id=str(invitation_id))
        try:
            response = await self.stub.IssueInvitationLink(
                request, metadata=self.client.metadata(), timeout=self.client.timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise LinkUnavailable(f"identity {self.client.target}: {exc.code().name} {exc.details() or ''}") from exc
        return str(response.token)

    async def close(self) -> None:
        await self.client.close()
