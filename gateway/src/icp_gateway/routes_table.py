"""Which service owns which public path prefix."""

from __future__ import annotations

# Longest prefixes need no special care: no prefix here is a prefix of another.
ROUTES: dict[str, str] = {
    "/api/auth": "identity",
    "/api/organisations": "identity",
    "/api/catalog": "pipelines",
    "/api/specs": "pipelines",
    "/api/resources": "pipelines",
    "/api/sources": "pipelines",
    "/api/destinations": "pipelines",
    "/api/assets": "pipelines",
    "/api/jobs": "pipelines",
    "/api/runs": "pipelines",
    "/api/backfills": "pipelines",
    "/api/oauth": "pipelines",
    "/api/external": "pipelines",
    "/api/agent": "agent",
}


def owner_of(path: str) -> str | None:
    """The service that serves `path`, or None when no service does."""
    for prefix, service in ROUTES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None
