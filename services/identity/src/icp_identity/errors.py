"""Domain errors specific to the identity service (the shared ones live in icp_common.errors)."""

from __future__ import annotations

from icp_common.errors import DomainError, InvalidInput


class NotConfigured(DomainError):
    """A feature needs configuration that is missing (the spec answers 500 with a JSON detail)."""

    status_code = 500
    grpc_code = "FAILED_PRECONDITION"


class NoOrganisationSelected(InvalidInput):
    """400 over HTTP (spec 1.5); FAILED_PRECONDITION over gRPC (identity.v1 contract)."""

    grpc_code = "FAILED_PRECONDITION"

    def __init__(self) -> None:
        super().__init__("No organisation selected")
