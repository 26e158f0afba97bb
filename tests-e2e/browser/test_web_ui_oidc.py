"""Signing in through an OpenID Connect provider from the official web UI, in chromium.

The stack has no Google sign-in, only an OpenID provider (oidc-provider-mock, a real one) in
INTERLOPER_AUTH_OIDC_PROVIDERS. The UI's only button, "Login with Google", leads to identity's
provider list; the person picks the provider, consents on the provider's own page (a different
origin, allowed for this browser only), and comes back signed in to the UI's welcome page."""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from collections.abc import Iterator

import pytest

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.ports import free_port
from icp_stack.pytest_plugin import (
    STACK_ARGS_ENV,
    StackHandle,
    infra_tmp_dir,
    remove_infra_tmp_dir,
    start_stack,
    stop_stack_process,
)
from icp_testing.oidc import OidcProviderServer, serve_oidc_provider


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProviderServer]:
    with serve_oidc_provider() as server:
        yield server


@pytest.fixture(scope="module")
def stack(provider: OidcProviderServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    """This module's stack (overrides the session's): OpenID Connect sign-in and no Google."""
    base = infra_tmp_dir(tmp_path_factory, "oidc-browser-stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOPER_AUTH_GOOGLE_")}
    env |= {
        "INTERLOPER_CATALOG": json.dumps(CATALOG_PATHS),
        "INTERLOPER_AUTH_OIDC_PROVIDERS": json.dumps(
            [{"name": "acme", "issuer": provider.url, "client_id": "web", "client_secret": "s", "display_name": "Acme"}]
        ),
    }
    extra = ["--without", "pipelines-scheduler,pipelines-worker,notifications"]
    handle = start_stack(
        base / "data",
        free_port(),
        base / "stack.log",
        [*extra, *shlex.split(os.environ.get(STACK_ARGS_ENV, ""))],
        env=env,
    )
    try:
        yield handle
    finally:
        stop_stack_process(handle.process)
    remove_infra_tmp_dir(base)


def test_sign_in_through_an_openid_provider_from_the_login_button(people, provider: OidcProviderServer) -> None:
    email = f"olga-{uuid.uuid4().hex[:8]}@acme.example"
    provider.set_user("olga", email=email, email_verified=True, name="Olga OIDC")
    olga = people("olga")
    olga.allowed_origins.append(provider.url)
    page = olga.page
    page.goto("/")
    page.wait_for_url(re.compile(r"/login(\?|$)"))
    page.get_by_role("button", name="Login with Google").click()
    page.wait_for_url(re.compile(r"/api/auth/oidc(\?|$)"))
    olga.snap("provider-list")
    page.get_by_role("link", name="Sign in with Acme").click()
    page.wait_for_url(lambda url: url.startswith(f"{provider.url}/oauth2/authorize"))
    # The provider's page asks for a stylesheet on a CDN (refused: this browser never leaves the
    # stack and the provider) and a favicon it does not have: its noise, not the UI's.
    page.locator("input[name=sub]").fill("olga")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(r"/welcome$"))
    olga.problems[:] = [p for p in olga.problems if "cdn.jsdelivr.net" not in p and provider.url not in p]
    olga.reported = min(olga.reported, len(olga.problems))
    olga.snap("welcome")
    me = olga.api("GET", "/api/auth/me")
    assert (me["email"], me["name"], me["organisation"]) == (email, "Olga OIDC", None)
