"""Which service owns which public path prefix."""

from __future__ import annotations

# Every prefix is `/api/<one segment>`, so a path's owner is one dict lookup (owner_of).
ROUTES: dict[str, str] = {
    "/api/auth": "identity",
    "/api/organisations": "identity",
    "/api/tokens": "identity",
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
    """The service that serves `path` (a prefix itself or anything under it), or None."""
    if not path.startswith("/api/"):
        return None
    end = path.find("/", 5)
    return ROUTES.get(path if end < 0 else path[:end])
