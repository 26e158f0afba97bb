"""The web UI's OAuth "connect" flow in a real browser (issue 15, item 1), on a stack of its own
whose Google app (pipelines' `INTERLOPER_OAUTH_GOOGLE_*`) exchanges codes at a fake provider.

An admin opens a new Demo Ads Connection, clicks "Sign in with Google": the popup goes to Google's
authorization page (answered here as Google would: a redirect to the app's redirect URI with a
code), the SPA's `/auth/google` page posts the code to `/api/oauth/google` and hands the answer to
the form, which saves the connection. The platform's client secret reaches the provider only: the
browser gets, and the connection stores, `platform:oauth/google/client_secret`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Route, expect

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
from icp_testing.fake_providers import GOOD_CODE, FakeProviders, serve_in_thread

CLIENT_ID = "google-client-id"
PLATFORM_SECRET = "google-client-secret"
REFERENCE = "platform:oauth/google/client_secret"


def icons(person: Any) -> Callable[[Route], None]:
    def answer(route: Route) -> None:
        body = json.dumps(person.icons.answer(route.request.url))
        route.fulfill(
            status=200, body=body, content_type="application/json", headers={"Access-Control-Allow-Origin": "*"}
        )

    return answer


@pytest.fixture(scope="module")
def fake_google() -> Iterator[FakeProviders]:
    with serve_in_thread(FakeProviders()) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(fake_google: FakeProviders, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    """This module's stack (overrides the session's): Google configured for pipelines only."""
    base = infra_tmp_dir(tmp_path_factory, "oauth-browser-stack")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOPER_OAUTH_")}
    env |= fake_google.env(credentials=False)  # every provider base URL at the fake
    env |= {
        "INTERLOPER_CATALOG": json.dumps(CATALOG_PATHS),
        "INTERLOPER_OAUTH_GOOGLE_CLIENT_ID": CLIENT_ID,
        "INTERLOPER_OAUTH_GOOGLE_CLIENT_SECRET": PLATFORM_SECRET,
        "INTERLOPER_OAUTH_GOOGLE_REDIRECT_URI": f"http://127.0.0.1:{port}/auth/google",
    }
    extra = ["--without", "pipelines-scheduler,pipelines-worker,notifications"]
    handle = start_stack(
        base / "data", port, base / "stack.log", [*extra, *shlex.split(os.environ.get(STACK_ARGS_ENV, ""))], env=env
    )
    try:
        yield handle
    finally:
        stop_stack_process(handle.process)
    remove_infra_tmp_dir(base)


def test_admin_connects_google_in_the_oauth_popup(people, stack: StackHandle, fake_google: FakeProviders) -> None:
    alice = people("admin")
    page = alice.page
    alice.sign_in(f"alice-{uuid.uuid4().hex[:8]}@e2e.example", "Alice Admin")
    page.wait_for_url(re.compile(r"/welcome$"))
    page.get_by_placeholder("My Organisation").fill("Connected Co")
    page.get_by_role("button", name="Create Organisation").click()
    alice.toast("Organisation created")

    # Google's authorization page, as the provider answers it: back to the redirect URI with a code.
    authorize: list[dict[str, list[str]]] = []

    def google(route: Route) -> None:
        query = parse_qs(urlsplit(route.request.url).query)
        authorize.append(query)
        route.fulfill(status=302, headers={"Location": f"{query['redirect_uri'][0]}?code={GOOD_CODE}"})

    alice.context.route(re.compile(r"^https://accounts\.google\.com/"), google)
    # The popup is a page of its own: answer its Iconify requests as conftest does for the others.
    alice.context.route(re.compile(r"^https://api\.(iconify\.design|simplesvg\.com|unisvg\.com)/"), icons(alice))
    # What the browser receives from the exchange (read here: the popup closes right after it).
    exchanged: list[str] = []

    def exchange(route: Route) -> None:
        response = route.fetch()
        exchanged.append(response.text())
        route.fulfill(response=response)

    alice.context.route(re.compile(r"/api/oauth/google$"), exchange)

    page.get_by_role("link", name="Connections", exact=True).click()
    page.wait_for_url(re.compile(r"/resources/connection$"))
    page.get_by_role("button", name="New connection").click()
    dialog = page.get_by_role("dialog", name="New Connection")
    dialog.get_by_text("Demo Ads Connection").click()
    dialog.get_by_label("Name", exact=True).fill("Google Ads")
    alice.snap("oauth-connection-form")
    with page.expect_popup() as opened:
        dialog.get_by_role("button", name="Sign in with Google").click()
    popup = opened.value
    alice.toast("Connected to Google")
    alice.wait_for("the popup to close itself", popup.is_closed)
    expect(dialog.get_by_role("button", name="Connected to Google")).to_be_visible()
    alice.snap("oauth-connected")
    dialog.get_by_role("button", name="Create Connection").click()
    alice.toast('Connection "Google Ads" created')
    alice.snap("oauth-connection-created")

    [query] = authorize
    assert (query["client_id"], query["redirect_uri"]) == ([CLIENT_ID], [f"{stack.base_url}/auth/google"])
    [answer] = exchanged
    assert PLATFORM_SECRET not in answer and json.loads(answer)["client_secret"] == REFERENCE
    [connection] = alice.api("GET", "/api/resources/?kind=connection")
    data = alice.api("GET", f"/api/resources/{connection['id']}")["data"]
    assert data == {
        "client_id": CLIENT_ID,
        "client_secret": REFERENCE,
        "refresh_token": "refresh-from-oauth2.googleapis.com",
        "region": "eu",
    }
    [exchange] = fake_google.to("/oauth2.googleapis.com/token")
    assert (exchange.json["code"], exchange.json["client_secret"]) == (GOOD_CODE, PLATFORM_SECRET)
