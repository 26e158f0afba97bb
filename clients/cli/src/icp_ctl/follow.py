"""`--follow`: a run's (or backfill's) status changes, events and log lines, live from `/api/ws`.

The socket asks for message ids (`resume=1`); when it drops, the follower reconnects with
`since=<last id>` so the gateway replays what was missed. After every (re)connect and after a few
quiet seconds it also reads the state over HTTP (events `after` the last one seen), which covers
frames published before the subscription started; events and lines are shown once (by id).
Following never changes the run: Ctrl-C just stops watching.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any, TextIO

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from .client import TERMINAL, ApiError, Client, Json, log_page
from .output import log_text

QUIET_SECONDS = 5.0  # no frame for this long: read the state over HTTP (a missed frame is not fatal)
LOG_PAGE = 1000
MAX_RECONNECTS = 15  # consecutive failed (re)connects before giving up (about a minute)
# A run's statuses in lifecycle order (the three ends last).
RUN_ORDER = {"pending": 0, "queued": 1, "dispatched": 2, "running": 3, "success": 4, "failed": 4, "canceled": 4}
_STARTED = re.compile(r"\((\d+) assets?\)")
_FINISHED_ASSET = ("asset_completed", "asset_failed", "asset_canceled", "asset_skipped")
# Close codes that end the stream for good (the token/session ended, no longer a member).
_FATAL_CLOSE = {4401: "the session or token ended", 4403: "no longer a member of the organisation"}


def short_time(value: Any) -> str:
    """`HH:MM:SS` of an API timestamp (`2026-11-24 23:21:50.05+00:00` or ISO with `T`)."""
    text = str(value or "")
    return text[11:19] if len(text) >= 19 else text


class Display:
    """Lines, plus on a terminal one progress line kept at the bottom (redrawn after each line)."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out, self.tty, self._status = out, tty, ""

    def line(self, text: str) -> None:
        if self.tty and self._status:
            self.out.write("\r\x1b[K")
        self.out.write(text + "\n")
        if self.tty and self._status:
            self.out.write(self._status)
        self.out.flush()

    def progress(self, text: str) -> None:
        if self.tty and text != self._status:
            self._status = text
            self.out.write("\r\x1b[K" + text)
            self.out.flush()

    def end(self) -> None:
        if self.tty and self._status:
            self.out.write("\r\x1b[K")
            self.out.flush()
        self._status = ""


def frames(client: Client, state: Follower) -> Iterator[Json | None]:
    """Frames of `/api/ws`; None after each (re)connect and each quiet spell (time to poll)."""
    failures = 0
    while True:
        try:
            with connect(
                client.ws_url(since=state.last_seq),
                additional_headers=client.auth_headers(),
                open_timeout=10,
                user_agent_header="interloper-ctl",
            ) as socket:
                try:
                    failures = 0
                    yield None
                    while True:
                        try:
                            raw = socket.recv(timeout=QUIET_SECONDS)
                        except TimeoutError:
                            yield None
                            continue
                        try:
                            frame = json.loads(raw)
                        except ValueError:
                            continue  # not a frame of the contract: nothing to show
                        if isinstance(frame, dict):
                            if isinstance(frame.get("id"), int):
                                state.last_seq = frame["id"]
                            yield frame
                finally:
                    socket.close()  # a normal close (1000) when the follower is done, not 1011
        except InvalidStatus as error:
            status = error.response.status_code
            if status in (401, 403):
                detail = error.response.body.decode(errors="replace") if error.response.body else ""
                raise ApiError(status, _ws_detail(detail) or "the realtime stream refused the credentials") from error
            failures += 1
            reason = f"HTTP {status}"
        except ConnectionClosed as error:
            code = error.rcvd.code if error.rcvd else None
            if code in _FATAL_CLOSE:
                raise ApiError(401 if code == 4401 else 403, f"/api/ws closed: {_FATAL_CLOSE[code]}") from error
            failures += 1
            reason = f"closed ({code})" if code else "connection lost"
        except (OSError, InvalidHandshake, TimeoutError) as error:
            failures += 1
            reason = str(error) or type(error).__name__
        if failures > MAX_RECONNECTS:
            raise ApiError(0, f"lost /api/ws ({reason}) and could not reconnect")
        state.display.line(f"-- /api/ws {reason}; reconnecting (resuming after message {state.last_seq}) --")
        time.sleep(min(0.5 * 2 ** (failures - 1), 5.0))


def _ws_detail(body: str) -> str:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return body.strip()
    return str(detail) if detail else ""


class Follower:
    """Shared state of a follow of one `kind` ("run", "backfill") of row `ident`: the display,
    the row's status and last state, the last stream sequence seen."""

    kind = ""

    def __init__(self, client: Client, out: TextIO, tty: bool, ident: str) -> None:
        self.client = client
        self.display = Display(out, tty)
        self.ident = ident
        self.status: str | None = None
        self.state: Json = {}  # the row as last read or received
        self.last_seq: int | None = None

    def poll(self) -> None:
        raise NotImplementedError

    def on_frame(self, frame: Json) -> None:
        raise NotImplementedError

    def summary(self) -> str:
        return f"{self.kind} {self.ident} {self.status}"

    def finished(self) -> bool:
        return self.status in TERMINAL

    def follow(self) -> None:
        """Until finished; the caller reads the final status."""
        try:
            for frame in frames(self.client, self):
                if frame is None:
                    self.poll()
                else:
                    self.on_frame(frame)
                if self.finished():
                    self.poll()  # the last events (e.g. the error) before saying how it ended
                    return
        finally:
            self.display.end()


class RunFollower(Follower):
    kind = "run"

    def __init__(self, client: Client, out: TextIO, tty: bool, run_id: str) -> None:
        super().__init__(client, out, tty, run_id)
        self.run_id = run_id
        self.seen_events: set[str] = set()
        self.last_event: str | None = None
        self.total: int | None = None
        self.done: set[str] = set()
        self.error: str | None = None
        self.logs = True  # False once the server answers 404 for the logs route (older server)
        self.log_cursor: str | int | None = None
        self.seen_lines: set[str] = set()

    def progress(self) -> str:
        total = "?" if self.total is None else str(self.total)
        return f"run {self.run_id[:8]} {self.status or '...'}  assets {len(self.done)}/{total}"

    def poll(self) -> None:
        self.state = self.client.run(self.run_id)
        while True:
            page = self.client.run_events(self.run_id, after=self.last_event, limit=1000)
            for event in page:
                self.on_event(event)
            if len(page) < 1000:
                break
        self.poll_logs()
        self.on_status(str(self.state.get("status")))

    def poll_logs(self) -> None:
        if not self.logs:
            return
        while True:
            try:
                body = self.client.run_logs(self.run_id, after=self.log_cursor, limit=LOG_PAGE)
            except ApiError as error:
                if error.status == 404:
                    self.logs = False  # an older server: no run logs, events only
                    return
                raise
            lines, cursor = log_page(body)
            for line in lines:
                self.on_log(line)  # advances log_cursor to the newest `seq`
            if cursor is not None and not isinstance(self.log_cursor, int):
                self.log_cursor = cursor  # lines without `seq`: the server's cursor
            if len(lines) < LOG_PAGE:
                return

    def on_frame(self, frame: Json) -> None:
        table, record = frame.get("table"), frame.get("record")
        if not isinstance(record, dict):
            return
        if table == "runs" and record.get("id") == self.run_id:
            self.state = {**self.state, **record}
            self.on_status(str(record.get("status")))
        elif table == "events" and record.get("run_id") == self.run_id:
            self.on_event(record)
        elif table == "run_logs" and record.get("run_id") == self.run_id:
            lines = record.get("lines")
            for line in lines if isinstance(lines, list) else [record]:
                if isinstance(line, dict):
                    self.on_log(line)

    def on_status(self, status: str) -> None:
        # A run only moves forward: a frame relayed late (or a stale read) never takes it back.
        if RUN_ORDER.get(status, 0) > RUN_ORDER.get(self.status or "", -1):
            self.status = status
            self.display.line(f"run {self.run_id[:8]} {status}")
        self.display.progress(self.progress())

    def on_event(self, event: Json) -> None:
        event_id = str(event.get("id"))
        if event_id in self.seen_events:
            return
        self.seen_events.add(event_id)
        self.last_event = event_id
        kind = str(event.get("event_type"))
        key = event.get("asset_key")
        if kind == "run_started" and (match := _STARTED.search(str(event.get("message") or ""))):
            self.total = int(match.group(1))
        text = f"{short_time(event.get('timestamp'))} {kind:<20} {key or '-'}"
        if kind in _FINISHED_ASSET and key:
            self.done.add(str(key))
            text += f"  [{len(self.done)}/{'?' if self.total is None else self.total}]"
        if event.get("message"):
            text += f"  {event['message']}"
        if event.get("error"):
            self.error = self.error or str(event["error"])  # the first error is the cause
            if event.get("message") is None or str(event["error"]) not in str(event.get("message")):
                text += f"  error: {event['error']}"
        self.display.line(text.replace("\n", " "))
        self.display.progress(self.progress())

    def on_log(self, line: Json) -> None:
        seq = line.get("seq")
        key = str(seq) if seq is not None else json.dumps([line.get("timestamp"), line.get("stream"), log_text(line)])
        if key in self.seen_lines:
            return  # read over HTTP and received as a frame too
        self.seen_lines.add(key)
        if isinstance(seq, int) and (not isinstance(self.log_cursor, int) or seq > self.log_cursor):
            self.log_cursor = seq  # the next HTTP read starts after it
        stream = line.get("stream") or "log"
        asset_key = line.get("asset") or line.get("asset_key")
        asset = f" {asset_key}" if asset_key else ""
        self.display.line(f"{short_time(line.get('timestamp'))} [{stream}]{asset} {log_text(line)}")

    def summary(self) -> str:
        if self.status == "failed" and self.error:
            return f"run {self.run_id} failed: {self.error}"
        return super().summary()


class BackfillFollower(Follower):
    kind = "backfill"

    def __init__(self, client: Client, out: TextIO, tty: bool, backfill_id: str) -> None:
        super().__init__(client, out, tty, backfill_id)
        self.backfill_id = backfill_id
        self.runs: dict[str, Json] = {}  # run id -> latest record

    def progress(self) -> str:
        latest: dict[str, str] = {}
        for run in sorted(self.runs.values(), key=lambda r: str(r.get("created_at"))):
            latest[str(run.get("partition_date"))] = str(run.get("status"))
        done = sum(s in TERMINAL for s in latest.values())
        total = self.state.get("partitions") or len(latest)
        return f"backfill {self.backfill_id[:8]} {self.status or '...'}  partitions {done}/{total}"

    def poll(self) -> None:
        self.state = self.client.backfill(self.backfill_id)
        for run in self.client.runs(backfill_id=self.backfill_id, limit=1000):
            self.on_run(run)
        self.on_status(str(self.state.get("status")))

    def on_frame(self, frame: Json) -> None:
        table, record = frame.get("table"), frame.get("record")
        if not isinstance(record, dict):
            return
        if table == "backfills" and record.get("id") == self.backfill_id:
            self.state = {**self.state, **record}
            self.on_status(str(record.get("status")))
        elif table == "runs" and record.get("backfill_id") == self.backfill_id:
            self.on_run(record)

    def on_status(self, status: str) -> None:
        if status != self.status and self.status not in TERMINAL:
            self.status = status
            self.display.line(f"backfill {self.backfill_id[:8]} {status}")
        self.display.progress(self.progress())

    def on_run(self, run: Json) -> None:
        run_id = str(run.get("id"))
        before = self.runs.get(run_id, {}).get("status")
        self.runs[run_id] = {**self.runs.get(run_id, {}), **run}
        if run.get("status") != before:
            self.display.line(f"partition {run.get('partition_date')}  run {run_id[:8]} {run.get('status')}")
        self.display.progress(self.progress())

    def summary(self) -> str:
        failed = sorted(str(r.get("partition_date")) for r in self.runs.values() if r.get("status") == "failed")
        extra = f" (failed partitions: {', '.join(failed)})" if failed and self.status != "success" else ""
        return super().summary() + extra
