"""identity.v1 GetOrganisation (thin), scoped to the caller identity in the metadata."""

from __future__ import annotations

import uuid
from typing import Any

from icp_common.caller import caller_of
from icp_common.db import unit_of_work
from icp_common.errors import NotFound
from icp_common.grpc import current_identity
from icp_protos.interloper.identity.v1 import identity_pb2 as pb

from ..grpc_base import ServicerBase
from . import service
from .models import Organisation


def organisation_to_proto(org: Organisation) -> pb.Organisation:
    message = pb.Organisation(id=str(org.id), name=org.name)
    if org.created_at is not None:
        message.created_at.FromDatetime(org.created_at)
    return message


class OrganisationsServicer(ServicerBase):
    async def GetOrganisation(self, request: pb.GetOrganisationRequest, context: Any) -> pb.GetOrganisationResponse:
        caller = caller_of(current_identity())
        try:
            org_id = uuid.UUID(request.org_id)
        except ValueError as exc:
            raise NotFound("Organisation not found") from exc
        async with unit_of_work(self.sessions) as db:
            org = await service.get_visible(db, caller, org_id)
            return pb.GetOrganisationResponse(organisation=organisation_to_proto(org))
