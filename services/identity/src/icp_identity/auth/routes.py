"""`/api/auth/*` (spec 2.4): Google and OpenID Connect sign-in, dev login, logout, me, switch-org,
accept-invite."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from icp_common.caller import CallerDep
from icp_common.errors import DomainError, NotFound

from ..audit import recorder
from ..deps import AuditDep, ReaderDep, SessionDep, SettingsDep
from ..invitations import service as invitations_service
from ..schemas import Status
from ..security import safe_redirect_path
from . import cookies, oidc_signin, service
from .dev_login_page import dev_login_form
from .oidc import OidcClients
from .oidc_pages import error_page, providers_page
from .schemas import AcceptInvitation, AcceptStatus, AuthUserRead, SwitchOrganisation

router = APIRouter(prefix="/api/auth", tags=["auth"])
dev_router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.get("/google", status_code=307, response_class=RedirectResponse)
async def google_login(settings: SettingsDep, redirect: str | None = None) -> Response:
    """Send the browser to Google; the state nonce is bound to a short-lived cookie."""
    if not settings.auth.google_client_id and settings.auth.oidc_providers:
        # No Google but OpenID Connect providers: the web UI's only sign-in button lists them.
        query = f"?{urlencode({'redirect': redirect})}" if redirect else ""
        return RedirectResponse(f"/api/auth/oidc{query}", status_code=307)
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
    try:
        sign_in = await service.finish_google(
            db, settings, code=code, state=state, expected_nonce=request.cookies.get(cookies.OAUTH_STATE_COOKIE)
        )
    except DomainError:
        await recorder.record_failed_sign_in(request, "google", None)
        raise
    await recorder.record_sign_in(db, request, "google", user_id=sign_in.session.user_id, email=None)
    response = RedirectResponse(sign_in.redirect, status_code=302)
    cookies.set_session(response, settings, sign_in.session.token)
    cookies.clear_oauth_state(response, settings)
    return response


def _oidc_clients(request: Request) -> OidcClients:
    """The providers' clients of this app (made once: they cache discovery and key sets)."""
    state = request.app.state
    clients: OidcClients | None = getattr(state, "oidc_clients", None)
    if clients is None:
        clients = state.oidc_clients = oidc_signin.clients_for(state.settings)
    return clients


def _sign_in_failed(exc: DomainError) -> HTMLResponse:
    """A failed sign-in ends on a page saying why (never a 500), with the state cookie cleared."""
    return HTMLResponse(error_page(str(exc.detail)), status_code=exc.status_code)


@router.get("/oidc", response_class=HTMLResponse)
async def oidc_providers(settings: SettingsDep, redirect: str | None = None) -> Response:
    """The sign-in page listing the configured OpenID Connect providers."""
    if not settings.auth.oidc_providers:
        raise NotFound("No OpenID Connect providers configured")
    page = providers_page(settings.auth.oidc_providers, safe_redirect_path(redirect), dev_login=settings.auth.dev_login)
    return HTMLResponse(page)


@router.get("/oidc/{provider}/login", status_code=302, response_class=RedirectResponse)
async def oidc_login(request: Request, settings: SettingsDep, provider: str, redirect: str | None = None) -> Response:
    """302 to the provider with state, nonce and PKCE (S256), bound to this browser by a cookie."""
    client = oidc_signin.client_of(_oidc_clients(request), provider)  # unknown: 404 JSON
    try:
        start = await oidc_signin.start(settings, client, redirect)
    except DomainError as exc:
        return _sign_in_failed(exc)
    response = RedirectResponse(start.url, status_code=302)
    cookies.set_oidc_state(response, settings, start.cookie)
    return response


@router.get("/oidc/{provider}/callback", status_code=302, response_class=RedirectResponse)
async def oidc_callback(
    request: Request,
    settings: SettingsDep,
    provider: str,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Finish OpenID Connect sign-in: session cookie, then 302 to the path chosen at login."""
    client = oidc_signin.client_of(_oidc_clients(request), provider)
    try:
        sign_in = await oidc_signin.finish(
            request.app.state.resources.sessions,
            settings,
            client,
            cookie=request.cookies.get(cookies.OIDC_STATE_COOKIE),
            state=state,
            code=code,
            error=error,
            connection=request,
        )
    except DomainError as exc:
        await recorder.record_failed_sign_in(request, f"oidc:{provider}", getattr(exc, "email", None))
        response: Response = _sign_in_failed(exc)
    else:
        response = RedirectResponse(sign_in.redirect, status_code=302)
        cookies.set_session(response, settings, sign_in.session.token)
    cookies.clear_oidc_state(response, settings)
    return response


@dev_router.get("/dev-login", status_code=302, response_class=RedirectResponse)
async def dev_login(
    request: Request,
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
    await recorder.record_sign_in(db, request, "dev", user_id=new.user_id, email=email)
    response = RedirectResponse(safe_redirect_path(redirect), status_code=302)
    cookies.set_session(response, settings, new.token)
    return response


@router.post("/logout", response_model=Status)
async def logout(caller: CallerDep, db: SessionDep, response: Response, audit: AuditDep) -> Status:
    """Revoke every session of the user and clear the cookie."""
    await service.logout(db, caller)
    await audit("auth.sign_out", "user", caller.user_id)
    cookies.clear_session(response)
    return Status()


@router.get("/me", response_model=AuthUserRead)
async def me(caller: CallerDep, reader: ReaderDep) -> AuthUserRead:
    return AuthUserRead.model_validate(await service.me(reader, caller))


@router.post("/switch-org", response_model=Status)
async def switch_org(caller: CallerDep, body: SwitchOrganisation, db: SessionDep, audit: AuditDep) -> Status:
    await service.switch_organisation(db, caller, body.organisation_id)
    await audit("auth.switch_org", "organisation", body.organisation_id, org_id=body.organisation_id)
    return Status()


@router.post("/accept-invite", response_model=AcceptStatus)
async def accept_invite(caller: CallerDep, body: AcceptInvitation, db: SessionDep, audit: AuditDep) -> AcceptStatus:
    """Join the invitation's organisation and make it the active one."""
    outcome = await invitations_service.accept(db, caller, body.token)
    org_id = await recorder.last_organisation(db, caller.user)  # the one just joined and entered
    await audit("invitations.accept", "organisation", org_id, org_id=org_id)
    return AcceptStatus(status=outcome)
