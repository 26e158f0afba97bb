"""`--follow` against a real local WebSocket server that drops the connection mid-run: the
follower reconnects with `since=<last id>`, shows each event and log line once, counts assets
done / total, and stops at the run's end. (The HTTP reads go through httpx's in-process transport.)"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from icp_ctl import ApiError, Client
from icp_ctl.follow import BackfillFollower, Display, RunFollower

RUN = "11111111-2222-3333-4444-555555555555"


def event(event_id: str, kind: str, asset: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "run_id": RUN,
        "event_type": kind,
        "asset_key": asset,
        "timestamp": "2024-01-01T10:00:01+00:00",
        **extra,
    }


def log_line(seq: int, message: str) -> dict[str, Any]:
    return {"seq": seq, "timestamp": "2024-01-01T10:00:02+00:00", "stream": "stdout", "asset": "a", "message": message}


def frame(seq: int, table: str, record: dict[str, Any]) -> str:
    return json.dumps({"id": seq, "table": table, "event": "INSERT", "record": record})


class FakeRealtime:
    """Scripted connections: each list of frames is sent on one connection, then it is closed
    (1011: the server went away) unless it was the last script."""

    def __init__(self, scripts: list[list[str]], *, refuse: int | None = None) -> None:
        self.scripts, self.refuse = scripts, refuse
        self.requests: list[tuple[str, str | None]] = []
        self.closes: list[int | None] = []  # how the client left the last connection
        self.closed = threading.Event()
        self.server: Server = serve(self.handler, "127.0.0.1", 0, process_request=self.check)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def check(self, connection: ServerConnection, request: Any) -> Any:
        self.requests.append((request.path, request.headers.get("authorization")))
        if self.refuse:
            return connection.respond(self.refuse, '{"detail": "Invalid or expired token"}')
        return None

    def handler(self, connection: ServerConnection) -> None:
        script = self.scripts.pop(0)
        for text in script:
            connection.send(text)
        if self.scripts:
            connection.close(1011, "going away")
        else:
            try:
                connection.recv()  # the last one stays open until the client leaves
            except ConnectionClosed:
                self.closes.append(connection.close_code)
                self.closed.set()


@pytest.fixture
def realtime() -> Iterator[list[FakeRealtime]]:
    servers: list[FakeRealtime] = []
    yield servers
    for server in servers:
        server.server.shutdown()


def rest(
    port: int, status: list[str], events: list[dict[str, Any]], logs: list[dict[str, Any]] | None = None
) -> Client:
    """The HTTP side; `logs` None: a server from before run logs (404 for the route)."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == f"/api/runs/{RUN}":
            return httpx.Response(200, json={"id": RUN, "status": status[0]})
        if path == f"/api/runs/{RUN}/events":
            after = request.url.params.get("after")
            ids = [e["id"] for e in events]
            start = ids.index(after) + 1 if after in ids else 0
            return httpx.Response(200, json=events[start:])
        if path == f"/api/runs/{RUN}/logs":
            if logs is None:
                return httpx.Response(404, json={"detail": "Not Found"})
            after = int(request.url.params.get("after", "0"))
            return httpx.Response(200, json={"items": [x for x in logs if x["seq"] > after], "next_cursor": None})
        return httpx.Response(404, json={"detail": "Not Found"})

    return Client(f"http://127.0.0.1:{port}", "ilp_token", transport=httpx.MockTransport(handler))


def test_a_dropped_socket_resumes_with_since_and_nothing_is_shown_twice(realtime: list[FakeRealtime]) -> None:
    started = event("e1", "run_started", message="Run started (2 assets)")
    first = [
        frame(7, "runs", {"id": RUN, "status": "running"}),
        frame(8, "events", started),
        frame(9, "run_logs", {"run_id": RUN, "lines": [log_line(1, "hello from a")]}),
        frame(10, "events", event("e2", "asset_completed", "a", message="Asset 'a' completed")),
        frame(11, "events", {**event("x", "asset_completed", "other"), "run_id": "another-run"}),
    ]
    second = [
        frame(10, "events", event("e2", "asset_completed", "a", message="Asset 'a' completed")),  # replay overlap
        frame(12, "events", event("e3", "asset_failed", "b", error="boom", message="Asset 'b' failed: boom")),
        frame(13, "events", event("e4", "run_failed", error="boom", message="Run failed: boom")),
        frame(14, "runs", {"id": RUN, "status": "failed"}),
    ]
    server = FakeRealtime([first, second])
    realtime.append(server)
    out = io.StringIO()
    follower = RunFollower(rest(server.port, ["queued"], [started]), out, False, RUN)
    follower.follow()

    assert server.requests == [
        ("/api/ws?resume=1&subscribe=run_logs", "Bearer ilp_token"),
        ("/api/ws?resume=1&subscribe=run_logs&since=11", "Bearer ilp_token"),
    ]
    text = out.getvalue()
    assert text.count("run_started") == 1 and text.count("Asset 'a' completed") == 1
    assert "[1/2]" in text and "[2/2]" in text and "other" not in text
    assert "[stdout] a hello from a" in text
    assert "reconnecting (resuming after message 11)" in text
    assert follower.status == "failed" and follower.summary() == f"run {RUN} failed: boom"
    assert "\x1b[" not in text  # not a terminal: plain lines
    assert not follower.logs  # the server has no logs route (404): events only, no error
    assert server.closed.wait(10) and server.closes == [1000]  # a normal close once the run ended


def test_log_lines_read_over_http_and_received_live_are_shown_once(realtime: list[FakeRealtime]) -> None:
    live = [
        frame(3, "run_logs", {"run_id": RUN, "lines": [log_line(1, "first"), log_line(2, "second")]}),
        frame(4, "run_logs", {"run_id": "another-run", "lines": [log_line(1, "not ours")]}),
        frame(5, "runs", {"id": RUN, "status": "success"}),
    ]
    server = FakeRealtime([live])
    realtime.append(server)
    out = io.StringIO()
    follower = RunFollower(rest(server.port, ["running"], [], logs=[log_line(1, "first")]), out, False, RUN)
    follower.follow()
    text = out.getvalue()
    assert text.count("first") == 1 and text.count("second") == 1 and "not ours" not in text
    assert follower.logs and follower.log_cursor == 2


def test_on_a_terminal_the_progress_line_is_redrawn(realtime: list[FakeRealtime]) -> None:
    server = FakeRealtime([["not json", frame(1, "runs", {"id": RUN, "status": "success"})]])  # junk is skipped
    realtime.append(server)
    out = io.StringIO()
    follower = RunFollower(rest(server.port, ["running"], []), out, True, RUN)
    follower.follow()
    assert follower.status == "success"
    assert "\r\x1b[K" in out.getvalue() and "assets 0/?" in out.getvalue()


def test_a_refused_handshake_is_an_api_error(realtime: list[FakeRealtime]) -> None:
    server = FakeRealtime([[]], refuse=401)
    realtime.append(server)
    follower = RunFollower(rest(server.port, ["running"], []), io.StringIO(), False, RUN)
    with pytest.raises(ApiError) as caught:
        follower.follow()
    assert (caught.value.status, caught.value.detail) == (401, "Invalid or expired token")


def test_backfill_progress_counts_the_latest_run_of_each_partition() -> None:
    follower = BackfillFollower(Client("http://h", "t"), io.StringIO(), False, "b1")
    follower.state = {"partitions": 2}
    follower.on_run(
        {"id": "r1", "backfill_id": "b1", "partition_date": "2024-01-01", "status": "failed", "created_at": "1"}
    )
    follower.on_run(
        {"id": "r2", "backfill_id": "b1", "partition_date": "2024-01-02", "status": "success", "created_at": "1"}
    )
    assert follower.progress().endswith("partitions 2/2")
    follower.on_run(
        {"id": "r3", "backfill_id": "b1", "partition_date": "2024-01-01", "status": "queued", "created_at": "2"}
    )
    assert follower.progress().endswith("partitions 1/2")  # the retried partition is open again


def test_display_plain_lines_only_when_piped() -> None:
    out = io.StringIO()
    display = Display(out, tty=False)
    display.progress("assets 1/2")
    display.line("a line")
    display.end()
    assert out.getvalue() == "a line\n"


def test_a_late_frame_never_takes_the_run_back() -> None:
    """The REST read can be newer than frames still being relayed: `running` then a late `queued`."""
    out = io.StringIO()
    follower = RunFollower(Client("http://h", "t"), out, False, RUN)
    for status in ("running", "queued", "dispatched", "failed", "running"):
        follower.on_status(status)
    assert follower.status == "failed"
    assert out.getvalue().splitlines() == ["run 11111111 running", "run 11111111 failed"]
