"""A small synchronous client for the public /api, authenticated by an API token.

Every method maps one route and returns its decoded JSON; an error answer (or an unreachable
server) raises `ApiError(status, detail)` with the API's `detail` as one line.
"""

from __future__ import annotations

import time
import uuid
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

Json = dict[str, Any]

TERMINAL = frozenset({"success", "failed", "canceled"})
# Answers worth one more try (a restarting service behind the gateway): only for reads and for
# writes carrying an Idempotency-Key, which the API replays instead of running them twice.
_RETRY_STATUSES = frozenset({502, 503, 504})
_ATTEMPTS = 3


class ApiError(Exception):
    """An error answer of the API (`status` 0: the server could not be reached)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail


def error_detail(response: httpx.Response) -> str:
    """The answer's `detail` on one line: a string, or the validation errors `loc: msg; ...`."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        text = detail
    elif isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", []))
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        text = "; ".join(parts) or response.reason_phrase
    else:
        text = response.text.strip() or response.reason_phrase
    return " ".join(text.split())


class Client:
    """`Client("http://127.0.0.1:8080", "ilp_...")`. `session` (a session cookie) is only needed
    for what a token may not do, such as managing tokens."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        session: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        headers = {"user-agent": "interloper-ctl"}
        cookies = {}
        if token:
            headers["authorization"] = f"Bearer {token}"
        elif session:
            cookies["session_token"] = session
        self._http = httpx.Client(
            base_url=self.url, headers=headers, cookies=cookies, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # ---- plumbing ------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Json | None = None, json: Any = None) -> Any:
        headers = {}
        retry = method == "GET"
        if method == "POST" and path.endswith(("/run", "/backfill")):
            headers["idempotency-key"] = str(uuid.uuid4())  # the same key on every attempt
            retry = True
        query = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                response = self._http.request(method, path, params=query, json=json, headers=headers)
            except httpx.TransportError as error:
                if retry and attempt < _ATTEMPTS and isinstance(error, httpx.ConnectError | httpx.RemoteProtocolError):
                    time.sleep(0.5 * attempt)
                    continue
                raise ApiError(0, f"cannot reach {self.url}: {error or type(error).__name__}") from error
            if retry and response.status_code in _RETRY_STATUSES and attempt < _ATTEMPTS:
                time.sleep(0.5 * attempt)
                continue
            if response.status_code >= 400:
                raise ApiError(response.status_code, error_detail(response))
            if response.status_code == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError as error:
                raise ApiError(response.status_code, f"not a JSON answer from {path}") from error
        raise AssertionError("unreachable")

    def ws_url(self, *, since: int | None = None, subscribe: tuple[str, ...] = ("run_logs",)) -> str:
        """`/api/ws` with message ids (`resume=1`), replaying after `since` when given, with the
        opt-in frames of `subscribe` (run log lines; a server without them ignores the parameter)."""
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query: dict[str, str] = {"resume": "1"}
        if subscribe:
            query["subscribe"] = ",".join(subscribe)
        if since is not None:
            query["since"] = str(since)
        return urlunsplit((scheme, parts.netloc, parts.path + "/api/ws", urlencode(query), ""))

    def auth_headers(self) -> dict[str, str]:
        if self.token:
            return {"authorization": f"Bearer {self.token}"}
        cookie = self._http.cookies.get("session_token")
        return {"cookie": f"session_token={cookie}"} if cookie else {}

    # ---- identity ------------------------------------------------------------------------

    def me(self) -> Json:
        result: Json = self.request("GET", "/api/auth/me")
        return result

    def organisations(self) -> list[Json]:
        result: list[Json] = self.request("GET", "/api/organisations")
        return result

    def tokens(self) -> list[Json]:
        result: list[Json] = self.request("GET", "/api/tokens")
        return result

    def create_token(
        self, name: str, role: str, *, expires_in_days: int | None = 90, service_account: bool = False
    ) -> Json:
        body = {"name": name, "role": role, "expires_in_days": expires_in_days, "service_account": service_account}
        result: Json = self.request("POST", "/api/tokens", json=body)
        return result

    def revoke_token(self, token_id: str) -> None:
        self.request("DELETE", f"/api/tokens/{token_id}")

    # ---- catalog rows --------------------------------------------------------------------

    def sources(self) -> list[Json]:
        result: list[Json] = self.request("GET", "/api/sources")
        return result

    def destinations(self) -> list[Json]:
        result: list[Json] = self.request("GET", "/api/destinations")
        return result

    def assets(self) -> list[Json]:
        result: list[Json] = self.request("GET", "/api/assets")
        return result

    # ---- jobs, runs, backfills -----------------------------------------------------------

    def jobs(self) -> list[Json]:
        result: list[Json] = self.request("GET", "/api/jobs")
        return result

    def job(self, job_id: str) -> Json:
        result: Json = self.request("GET", f"/api/jobs/{job_id}")
        return result

    def run_job(self, job_id: str, partition_date: str | None = None) -> Json:
        """`{"status": "queued", "run_id": ...}`."""
        body = {"partition_date": partition_date} if partition_date else {}
        result: Json = self.request("POST", f"/api/jobs/{job_id}/run", json=body)
        return result

    def backfill_job(
        self, job_id: str, start_date: str, end_date: str, *, concurrency: int = 1, fail_fast: bool = False
    ) -> Json:
        """`{"status": "queued", "backfill_id": ...}`."""
        body = {"start_date": start_date, "end_date": end_date, "concurrency": concurrency, "fail_fast": fail_fast}
        result: Json = self.request("POST", f"/api/jobs/{job_id}/backfill", json=body)
        return result

    def runs(
        self,
        *,
        job_id: str | None = None,
        backfill_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Json]:
        params = {"job_id": job_id, "backfill_id": backfill_id, "status": status, "limit": limit, "offset": offset}
        result: list[Json] = self.request("GET", "/api/runs", params=params)
        return result

    def run(self, run_id: str) -> Json:
        result: Json = self.request("GET", f"/api/runs/{run_id}")
        return result

    def run_events(self, run_id: str, *, limit: int | None = None, after: str | None = None) -> list[Json]:
        """Events in order; `after` (an event id) continues from a previous page."""
        params = {"limit": limit, "after": after}
        result: list[Json] = self.request("GET", f"/api/runs/{run_id}/events", params=params)
        return result

    def asset_executions(self, run_id: str) -> list[Json]:
        result: list[Json] = self.request("GET", f"/api/runs/{run_id}/asset-executions")
        return result

    def run_logs(self, run_id: str, *, after: str | int | None = None, limit: int | None = None) -> Any:
        """One page of `GET /api/runs/{id}/logs`: `{"items": [{seq, timestamp, stream, asset,
        message}], "next_cursor"}` (lines with `seq` > `after`; see `iter_run_logs`)."""
        return self.request("GET", f"/api/runs/{run_id}/logs", params={"after": after, "limit": limit})

    def iter_run_logs(self, run_id: str, *, page: int = 1000) -> list[Json]:
        """Every stored log line of a run, following the cursor page by page."""
        lines: list[Json] = []
        after: str | int | None = None
        while True:
            body = self.run_logs(run_id, after=after, limit=page)
            batch, cursor = log_page(body)
            lines.extend(batch)
            if not batch or cursor is None or cursor == after:
                return lines
            after = cursor

    def cancel_run(self, run_id: str) -> Json:
        result: Json = self.request("POST", f"/api/runs/{run_id}/cancel")
        return result

    def retry_run(self, run_id: str) -> Json:
        """A new run of the same job and partition (the API has no retry route for a single run;
        a backfill's runs are retried with `retry_backfill`). Refused while the run is unfinished."""
        run = self.run(run_id)
        if run.get("status") not in TERMINAL:
            raise ApiError(409, f"Run {run_id} has not finished (status {run.get('status')})")
        if not run.get("job_id"):
            raise ApiError(409, f"Run {run_id} has no job any more (deleted)")
        return self.run_job(str(run["job_id"]), run.get("partition_date"))

    def backfills(self, *, active_only: bool = False) -> list[Json]:
        result: list[Json] = self.request("GET", "/api/backfills", params={"active_only": str(active_only).lower()})
        return result

    def backfill(self, backfill_id: str) -> Json:
        result: Json = self.request("GET", f"/api/backfills/{backfill_id}")
        return result

    def cancel_backfill(self, backfill_id: str) -> Json:
        result: Json = self.request("POST", f"/api/backfills/{backfill_id}/cancel")
        return result

    def retry_backfill(self, backfill_id: str) -> Json:
        result: Json = self.request("POST", f"/api/backfills/{backfill_id}/retry-failed")
        return result


def log_page(body: Any) -> tuple[list[Json], str | int | None]:
    """(lines, cursor for `after`) of a logs answer: `{"items": [...], "next_cursor": c}` (also
    `lines`/`cursor`, or a bare list); without a cursor, the last line's `seq` (`id`, `cursor`),
    so that a follower asks only for newer lines next time."""
    if isinstance(body, dict):
        lines = body.get("items") or body.get("lines") or []
        cursor = next((body[k] for k in ("next_cursor", "cursor", "next", "after") if body.get(k) is not None), None)
    elif isinstance(body, list):
        lines, cursor = body, None
    else:
        return [], None
    lines = [x for x in lines if isinstance(x, dict)]
    if cursor is None and lines:
        cursor = next((lines[-1][k] for k in ("seq", "cursor", "id") if lines[-1].get(k) is not None), None)
    return lines, cursor
