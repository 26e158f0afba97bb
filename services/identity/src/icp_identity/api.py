"""The URL tree of the identity service's public API (served under /api through the gateway)."""

from __future__ import annotations

from fastapi import FastAPI

from .audit.routes import router as audit_router
from .auth.routes import dev_router
from .auth.routes import router as auth_router
from .invitations.routes import router as invitations_router
from .members.routes import router as members_router
from .organisations.routes import router as organisations_router
from .settings import Settings
from .tokens.routes import router as tokens_router


def include_routes(app: FastAPI, settings: Settings) -> None:
    app.include_router(auth_router)
    if settings.auth.dev_login:  # otherwise GET /api/auth/dev-login is a plain 404
        app.include_router(dev_router)
    app.include_router(organisations_router)
    app.include_router(members_router)
    app.include_router(invitations_router)
    app.include_router(tokens_router)
    app.include_router(audit_router)
