"""Which service owns which public path prefix."""

from __future__ import annotations

# Every prefix is `/api/<one segment>`, so a path's owner is one dict lookup (owner_of).
ROUTES: dict[str, str] = {
    "/api/auth": "identity",
    "/api/organisations": "identity",
    "/api/tokens": "identity",
    "/api/audit": "identity",
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


# The one sub-path served by another service than its prefix's owner: an organisation's alert
# rules (`/api/organisations/{id}/alerts`) live in notifications, beside their deliveries.
_ALERTS_SUFFIX = "/alerts"
_ORGANISATIONS = "/api/organisations/"


def owner_of(path: str) -> str | None:
    """The service that serves `path` (a prefix itself or anything under it), or None."""
    if not path.startswith("/api/"):
        return None
    end = path.find("/", 5)
    owner = ROUTES.get(path if end < 0 else path[:end])
    if owner == "identity" and path.startswith(_ORGANISATIONS) and path.rstrip("/").endswith(_ALERTS_SUFFIX):
        middle = path.rstrip("/")[len(_ORGANISATIONS) : -len(_ALERTS_SUFFIX)]
        if middle and "/" not in middle:
            return "notifications"
    return owner
