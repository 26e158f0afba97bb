"""Settings of the gateway."""

from __future__ import annotations

from pydantic import Field

from icp_common.settings import ServiceSettings
from icp_common.web import MAX_BODY_BYTES


class Settings(ServiceSettings):
    http_port: int = 8000
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins (besides the public URL's and the request's own) allowed to make "
        "cookie-carrying state-changing requests (CSRF check)",
    )
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS (none by default)")
    upstream_connect_timeout: float = Field(3.0, description="Seconds to connect to a service")
    upstream_read_timeout: float = Field(120.0, description="Seconds to wait for a service's next bytes")
    serve_ui: bool = Field(True, description="Serve the web UI (interloper-app) at / when it is installed")
    icons_dir: str = Field(
        "",
        description="Directory of whole Iconify JSON icon sets (<set>.json) served to the web UI before the "
        "built-in subset (for catalogs with other icons)",
    )
    authenticate_timeout: float = Field(3.0, description="Deadline of the identity Authenticate call")
    gateway_auth_cache_ttl: float = Field(
        5.0,
        ge=0,
        description="Seconds an authenticated session is answered from the gateway's cache (dropped "
        "earlier by identity's events and by the caller's own successful identity writes); 0: ask "
        "identity on every request",
    )
    gateway_auth_cache_size: int = Field(10_000, ge=0, description="Sessions kept in that cache at most (LRU)")
    realtime_recheck_seconds: float = Field(
        30.0,
        gt=0,
        description="Seconds between re-checks of an open WebSocket/SSE stream's session, membership and "
        "organisation (at most the identity assertion's lifetime)",
    )
    max_body_bytes: int = Field(
        MAX_BODY_BYTES, description="Largest request body relayed (413 beyond, before any of it is read)"
    )
