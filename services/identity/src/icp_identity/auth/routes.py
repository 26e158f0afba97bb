"""`/api/auth/*` (spec 2.4): Google sign-in, dev login, logout, me, switch-org, accept-invite."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from icp_common.caller import CallerDep

from ..deps import ReaderDep, SessionDep, SettingsDep
from ..invitations import service as invitations_service
from ..schemas import Status
from ..security import safe_redirect_path
from . import cookies, service
from .dev_login_page import dev_login_form
from .schemas import AcceptInvitation, AcceptStatus, AuthUserRead, SwitchOrganisation

router = APIRouter(prefix="/api/auth", tags=["auth"])
dev_router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.get("/google", status_code=307, response_class=RedirectResponse)
async def google_login(settings: SettingsDep, redirect: str | None = None) -> Response:
    """Send the browser to Google; the state nonce is bound to a short-lived cookie."""
    if not settings.auth.google_client_id and settings.auth.dev_login:
        # Local stack without Google credentials: the web UI's sign-in button lands on the dev form.
        query = f"?{urlencode({'redirect': redirect})}" if redirect else ""
        return RedirectResponse(f"/api/auth/dev-login{query}", status_code=307)
    start = service.start_google(settings, redirect)
    response = RedirectResponse(start.url, status_code=307)
    cookies.set_oauth_state(response, settings, start.nonce)
    return response


@router.get("/google/callback", status_code=302, response_class=RedirectResponse)
async def google_callback(
    request: Request, db: SessionDep, settings: SettingsDep, code: str, state: str | None = None
) -> Response:
    """Finish Google sign-in: session cookie, then 302 to the (same-site) path from `state`."""
    sign_in = await service.finish_google(
        db, settings, code=code, state=state, expected_nonce=request.cookies.get(cookies.OAUTH_STATE_COOKIE)
    )
    response = RedirectResponse(sign_in.redirect, status_code=302)
    cookies.set_session(response, settings, sign_in.session.token)
    cookies.clear_oauth_state(response, settings)
    return response


@dev_router.get("/dev-login", status_code=302, response_class=RedirectResponse)
async def dev_login(
    db: SessionDep,
    settings: SettingsDep,
    email: Annotated[str | None, Query(min_length=1, max_length=320)] = None,
    name: str | None = None,
    redirect: str | None = None,
) -> Response:
    """Sign in as `email` without Google (only with INTERLOPER_AUTH_DEV_LOGIN=true); without
    `email`, a small form that asks for it."""
    if email is None:
        return HTMLResponse(dev_login_form(safe_redirect_path(redirect)))
    new = await service.session_for_email(db, settings, email, name)
    response = RedirectResponse(safe_redirect_path(redirect), status_code=302)
    cookies.set_session(response, settings, new.token)
    return response


@router.post("/logout", response_model=Status)
async def logout(caller: CallerDep, db: SessionDep, response: Response) -> Status:
    """Revoke every session of the user and clear the cookie."""
    await service.logout(db, caller)
    cookies.clear_session(response)
    return Status()


@router.get("/me", response_model=AuthUserRead)
async def me(caller: CallerDep, reader: ReaderDep) -> AuthUserRead:
    return AuthUserRead.model_validate(await service.me(reader, caller))


@router.post("/switch-org", response_model=Status)
async def switch_org(caller: CallerDep, body: SwitchOrganisation, db: SessionDep) -> Status:
    await service.switch_organisation(db, caller, body.organisation_id)
    return Status()


@router.post("/accept-invite", response_model=AcceptStatus)
async def accept_invite(caller: CallerDep, body: AcceptInvitation, db: SessionDep) -> AcceptStatus:
    """Join the invitation's organisation and make it the active one."""
    outcome = await invitations_service.accept(db, caller, body.token)
    return AcceptStatus(status=outcome)
