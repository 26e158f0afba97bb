"""Calls to the providers and the spec's error mapping (section 8), shared by every look-up.

`async with guard(context):` turns what goes wrong into the caller's answer:

* provider 401/403 -> the same status, `Authorization failed while <context>.`; a 400 whose body
  says the grant or token is invalid (OAuth `invalid_grant`, Graph API error code 190) counts as 401;
* provider 404 -> 404 `Resource not found while <context>.`;
* provider timeout -> 502 `Provider timed out while <context>.`; refused/reset connection or a
  broken answer at the transport level -> 502 `Provider unreachable while <context>.`;
* anything else (other statuses, a body that is not the expected JSON) -> 500 `Failed <context>.`

Only the method, the URL without its query and the status are logged, never credentials."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from icp_common.errors import DomainError

from ..oauth.http import ProviderError, redact

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def effective_status(response: httpx.Response) -> int:
    status = response.status_code
    if status != 400:
        return status
    try:
        body = response.json()
    except ValueError:
        return status
    if isinstance(body, dict):
        error = body.get("error")
        if error == "invalid_grant" or (isinstance(error, dict) and error.get("code") == 190):
            return 401
    return status


@asynccontextmanager
async def guard(context: str) -> AsyncIterator[None]:
    try:
        yield
    except DomainError:
        raise
    except httpx.HTTPStatusError as exc:
        status = effective_status(exc.response)
        log.warning(
            "%s: %s %s answered %s", context, exc.request.method, redact(exc.request.url), exc.response.status_code
        )
        if status in (401, 403):
            raise ProviderError(status, f"Authorization failed while {context}.") from None
        if status == 404:
            raise ProviderError(404, f"Resource not found while {context}.") from None
        raise ProviderError(500, f"Failed {context}.") from None
    except httpx.TimeoutException as exc:
        log.warning("%s: %s timed out (%s)", context, _where(exc), type(exc).__name__)
        raise ProviderError(502, f"Provider timed out while {context}.") from None
    except httpx.TransportError as exc:
        log.warning("%s: %s failed: %s", context, _where(exc), type(exc).__name__)
        raise ProviderError(502, f"Provider unreachable while {context}.") from None
    except Exception:
        log.exception("%s: unexpected answer", context)
        raise ProviderError(500, f"Failed {context}.") from None


def _where(exc: httpx.RequestError) -> str:
    try:
        return f"{exc.request.method} {redact(exc.request.url)}"
    except RuntimeError:  # no request attached
        return "a request"


async def fetch_json(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
    """One call; an error status raises `httpx.HTTPStatusError` (mapped by `guard`)."""
    response = await http.request(method, url, **kwargs)
    response.raise_for_status()
    return response.json()


async def refresh_access_token(
    http: httpx.AsyncClient,
    url: str,
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    basic_auth: bool = False,
) -> str:
    """OAuth 2 refresh-token grant (form POST); with `basic_auth` the app credentials go in the
    Authorization header only (Pinterest)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if not basic_auth:
        form |= {"client_id": client_id, "client_secret": client_secret}
    extra: dict[str, Any] = {"auth": httpx.BasicAuth(client_id, client_secret)} if basic_auth else {}
    body = await fetch_json(http, "POST", url, data=form, **extra)
    token = body["access_token"]
    if not isinstance(token, str):
        raise TypeError("access_token is not a string")
    return token


async def bounded_map(limit: int, items: Iterable[T], call: Callable[[T], Awaitable[R]]) -> list[R]:
    """`call` on every item, at most `limit` at a time, results in the items' order. The first
    failure cancels the calls still running and is raised as itself."""
    semaphore = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with semaphore:
            return await call(item)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(item)) for item in items]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def collect_pages(
    max_pages: int, context: str, page: Callable[[str | None], Awaitable[tuple[list[Any], str | None]]]
) -> list[Any]:
    """Items of every page: `page(cursor)` returns one page's items and the next cursor (None or ""
    at the end). Stops after `max_pages` pages or when a cursor comes back a second time."""
    items: list[Any] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(max_pages):
        batch, cursor = await page(cursor)
        items.extend(batch)
        if not cursor or cursor in seen:
            return items
        seen.add(cursor)
    log.warning("%s: stopped after %d pages", context, max_pages)
    return items


def text(value: Any, fallback: Any = "") -> str:
    """A provider value as the string the web UI shows (`fallback` when empty or missing)."""
    if value is None or value == "":
        return "" if fallback is None else str(fallback)
    return str(value)
