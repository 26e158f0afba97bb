"""Browser end-to-end tests: the official web UI (interloper-app, served by the gateway) driven
by Playwright in Debian's headless chromium against the whole stack, as a person uses it.

* The browser is /usr/bin/chromium (``INTERLOPER_TEST_CHROMIUM`` overrides the path), installed by
  ``scripts/install-browser.sh`` (``make test`` runs it). Playwright never downloads a browser
  here. A missing browser FAILS the tests, with the command that installs it.
* Every person is a separate chromium with a fresh user-data dir (its own cookies).
* Any browser console error, uncaught page error, ``/api`` response >= 500 or unexpected ``/api``
  4xx fails the test at the next step. Expected refusals (a viewer's 403s, ``/api/auth/me``'s
  401 while signed out) are declared by the test; Chromium logs every 4xx as a console error
  ("Failed to load resource ..."), and only those of declared refusals are accepted.
* No request may leave the stack's origin (a self-hosted, air-gapped install must work): every
  request is seen through Chrome DevTools' Fetch domain and one to any other origin fails the
  test (the UI's icons come from the gateway's /api/iconify, not from Iconify's public API).
* Screenshots of every step: ``tests-e2e/browser/artifacts/<test>/`` (``INTERLOPER_TEST_ARTIFACTS``
  overrides the base dir), listed at the end of the pytest run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    BrowserContext,
    CDPSession,
    ConsoleMessage,
    Page,
    Playwright,
    Response,
    WebSocket,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.pytest_plugin import StackHandle

log = logging.getLogger(__name__)

# The stack runs the demo catalog (set before the session's stack starts; see test_pipelines.py).
os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))

CHROMIUM_ENV = "INTERLOPER_TEST_CHROMIUM"
ARTIFACTS_ENV = "INTERLOPER_TEST_ARTIFACTS"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
ARTIFACTS_ROOT = Path(os.environ.get(ARTIFACTS_ENV) or Path(__file__).parent / "artifacts")
FAILED_TO_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})")

_written: list[Path] = []


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium; a missing browser is a failure, never a skip."""
    path = os.environ.get(CHROMIUM_ENV, "/usr/bin/chromium")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"chromium not found at {path}: the browser tests need Debian's chromium package. "
            f"Install it with `scripts/install-browser.sh` (as root: apt-get install chromium; `make test` "
            f"runs it) or point {CHROMIUM_ENV} at a chromium binary.",
            pytrace=False,
        )
    return path


@pytest.fixture
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's driver for one test (its event loop must not outlive the test: the async
    tests of the session run their own loop in this thread)."""
    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    """This test's screenshot directory (emptied first)."""
    directory = ARTIFACTS_ROOT / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return Shots(directory)


@pytest.fixture
def people(
    playwright_driver: Playwright, chromium_path: str, stack: StackHandle, shots: Shots, tmp_path: Path
) -> Iterator[Callable[[str], Person]]:
    """``people("alice")``: a person with their own browser (fresh profile) on the stack."""
    yield from _people(playwright_driver, chromium_path, stack, shots, tmp_path)


@pytest.fixture
def people_without_model(
    playwright_driver: Playwright, chromium_path: str, stack_without_model: StackHandle, shots: Shots, tmp_path: Path
) -> Iterator[Callable[[str], Person]]:
    """Like ``people``, on the stack whose assistant has no model (tests-e2e/conftest.py)."""
    yield from _people(playwright_driver, chromium_path, stack_without_model, shots, tmp_path)


def _people(
    playwright_driver: Playwright, chromium_path: str, stack: StackHandle, shots: Shots, tmp_path: Path
) -> Iterator[Callable[[str], Person]]:
    opened: list[Person] = []

    def open_person(name: str) -> Person:
        context = playwright_driver.chromium.launch_persistent_context(
            str(tmp_path / f"profile-{name}"),
            executable_path=chromium_path,
            args=CHROMIUM_ARGS,
            headless=True,
            base_url=stack.base_url,
            viewport=VIEWPORT,  # type: ignore[arg-type]
            locale="en-GB",
            timezone_id="UTC",
        )
        person = Person(name, context, stack.base_url, shots)
        opened.append(person)
        return person

    yield open_person
    late = []
    for person in opened:
        late += [f"{person.name}, after the last step: {problem}" for problem in person.problems[person.reported :]]
        with contextlib.suppress(PlaywrightError):
            person.context.close()
    if late:
        pytest.fail("\n".join(late), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _written:
        directories = sorted({path.parent for path in _written})
        terminalreporter.write_sep("-", "browser screenshots")
        for directory in directories:
            count = sum(1 for path in _written if path.parent == directory)
            terminalreporter.write_line(f"{directory}  ({count} screenshots)")


# ------------------------------------------------------------------------------------ helpers


@dataclass
class Shots:
    directory: Path
    count: int = 0

    def path(self, who: str, step: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.count:02d}-{who}-{re.sub(r'[^A-Za-z0-9_-]+', '-', step)}.png"
        _written.append(path)
        return path


class Person:
    """One person's browser: records what goes wrong and takes the step screenshots."""

    def __init__(self, name: str, context: BrowserContext, base_url: str, shots: Shots) -> None:
        self.name = name
        self.context = context
        self.base_url = base_url.rstrip("/")
        # Other origins a test lets this browser reach (an OpenID provider's sign-in page).
        self.allowed_origins: list[str] = []
        self.shots = shots
        self.problems: list[str] = []
        self.reported = 0
        self.refusals: list[tuple[int, re.Pattern[str]]] = [(401, re.compile(r"/api/auth/me$"))]
        self.api_calls: list[tuple[Page, str, str, int]] = []  # (page, method, path, status)
        self.ws_frames: dict[Page, list[dict[str, Any]]] = {}
        self.cdp: dict[Page, CDPSession] = {}
        context.set_default_timeout(20_000)
        context.on("console", self._console)
        context.on("weberror", lambda error: self.problems.append(f"uncaught page error: {error.error}"))
        context.on("response", self._response)
        self.page = context.pages[0] if context.pages else context.new_page()
        self._prepare(self.page)

    # -- what the browser reports

    def _prepare(self, page: Page) -> None:
        """Before the page loads anything: record its WebSocket frames and refuse (and report)
        every request to another origin (Chrome DevTools' Fetch domain: Playwright's own routing
        would also abort every /favicon.ico, the UI's logo)."""
        frames: list[dict[str, Any]] = []
        self.ws_frames[page] = frames

        def on_socket(socket: WebSocket) -> None:
            def on_frame(payload: str | bytes) -> None:
                try:
                    frames.append(json.loads(payload))
                except ValueError:
                    self.problems.append(f"WebSocket frame is not JSON: {payload!r:.200}")

            socket.on("framereceived", on_frame)

        page.on("websocket", on_socket)
        cdp = self.cdp[page] = self.context.new_cdp_session(page)

        def on_paused(event: dict[str, Any]) -> None:
            url = event["request"]["url"]
            try:
                if any(url.startswith(origin + "/") for origin in (self.base_url, *self.allowed_origins)):
                    cdp.send("Fetch.continueRequest", {"requestId": event["requestId"]})
                else:
                    self.problems.append(f"request outside the stack: {event['request']['method']} {url}")
                    cdp.send("Fetch.failRequest", {"requestId": event["requestId"], "errorReason": "BlockedByClient"})
            except PlaywrightError as exc:
                # The page dropped the request while it waited here (a navigation cancels what the
                # previous page still had in flight): nothing left to continue. Raised from this
                # handler, the error escaped into Playwright's dispatcher and asyncio's log
                # ("Invalid InterceptionId", seen on loaded CI machines).
                log.warning("%s %s was gone before it could be continued: %s", event["request"]["method"], url, exc)

        cdp.on("Fetch.requestPaused", on_paused)
        cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})

    def _path(self, url: str) -> str:
        return url[len(self.base_url) :] if url.startswith(self.base_url) else url

    def _refused(self, status: int, path: str) -> bool:
        return any(status == code and pattern.search(path.split("?")[0]) for code, pattern in self.refusals)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        match = FAILED_TO_LOAD.match(message.text)
        url = str(message.location.get("url", "")) if message.location else ""
        if match and 400 <= int(match.group(1)) < 500 and self._refused(int(match.group(1)), self._path(url)):
            return
        self.problems.append(f"console error: {message.text} ({url})")

    def _response(self, response: Response) -> None:
        path = self._path(response.url)
        if not path.startswith("/api"):
            return
        self.api_calls.append((response.frame.page, response.request.method, path, response.status))
        if response.status >= 500:
            self.problems.append(f"{response.request.method} {path} answered {response.status}: {_body(response)}")
        elif response.status >= 400 and not self._refused(response.status, path):
            self.problems.append(
                f"unexpected {response.status} for {response.request.method} {path}: {_body(response)}"
            )

    # -- what the test does

    def expect_refusal(self, status: int, path_regex: str) -> None:
        """Accept ``status`` (and Chromium's console error for it) for /api paths matching the regex."""
        self.refusals.append((status, re.compile(path_regex)))

    def check(self, step: str) -> None:
        if len(self.problems) > self.reported:
            new = self.problems[self.reported :]
            self.reported = len(self.problems)
            raise AssertionError(f"{self.name}, at step {step!r}:\n  " + "\n  ".join(new))

    def snap(self, step: str, page: Page | None = None) -> Path:
        """Screenshot of this step, then fail if anything went wrong so far."""
        page = page or self.page
        page.wait_for_load_state()
        path = self.shots.path(self.name, step)
        page.screenshot(path=str(path))
        self.check(step)
        return path

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A JSON call with this person's session (for set-up and for checking what the UI did)."""
        response = self.context.request.fetch(self.base_url + path, method=method, **kwargs)
        assert response.ok, f"{method} {path}: {response.status} {response.text()}"
        return response.json()

    def open_tab(self, path: str) -> tuple[Page, list[str]]:
        """A second tab on ``path``; the list fills with the URLs of its completed WebSocket
        handshakes (seen by Chromium's DevTools protocol: the server has accepted the socket)."""
        tab = self.context.new_page()
        self._prepare(tab)
        handshakes: list[str] = []
        sockets: dict[str, str] = {}
        cdp = self.cdp[tab]
        cdp.on("Network.webSocketCreated", lambda event: sockets.update({event["requestId"]: event["url"]}))
        cdp.on(
            "Network.webSocketHandshakeResponseReceived",
            lambda event: (
                handshakes.append(sockets.get(event["requestId"], "?")) if event["response"]["status"] == 101 else None
            ),
        )
        cdp.send("Network.enable")
        tab.goto(path)
        return tab, handshakes

    def drawn_icons(self, page: Page | None = None) -> list[str]:
        """The icon names (``set:name``) drawn on the page: @nuxt/icon's CSS mode paints an
        ``<span class="iconify i-set:name">`` with the icon's SVG as a mask (one colour) or a
        background (several); an icon whose data never came has neither."""
        names: list[str] = (page or self.page).evaluate(
            """() => [...document.querySelectorAll('.iconify')].filter(e => {
                const style = getComputedStyle(e);
                return [style.maskImage, style.webkitMaskImage, style.backgroundImage].some(
                    v => (v || '').includes('data:image/svg+xml')) || e.querySelector('svg') !== null;
            }).flatMap(e => [...e.classList].filter(c => c.startsWith('i-')).map(c => c.slice(2)))"""
        )
        return names

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {what} not within {timeout:.0f} s")
            self.page.wait_for_timeout(100)

    # -- the steps every test needs

    def sign_in(self, email: str, display_name: str, *, via: str = "/") -> None:
        """The SPA's "Login with Google" button; with Google unconfigured the stack's dev sign-in."""
        page = self.page
        if via:
            page.goto(via)
        page.wait_for_url(re.compile(r"/login(\?|$)"))
        page.get_by_role("button", name="Login with Google").wait_for()
        self.snap("login-page")
        page.get_by_role("button", name="Login with Google").click()
        page.wait_for_url(re.compile(r"/api/auth/dev-login"))
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Name").fill(display_name)
        self.snap("dev-sign-in-form")
        page.get_by_role("button", name="Login", exact=True).click()
        page.wait_for_url(lambda url: "/login" not in url and "/api/auth/" not in url)

    def toast(self, text: str) -> None:
        self.page.get_by_role("region", name=re.compile("Notifications")).get_by_text(text).first.wait_for()


def _body(response: Response) -> str:
    try:
        return response.text()[:300]
    except PlaywrightError:
        return "<no body>"
