"""A run's logs (issue 19), collected by the worker: lines of the run process's stdout and stderr
(read from its pipes, so that a crash still leaves every line written before it), its Python
`logging` records (`log` messages) and the worker's own final line (`system`, e.g. "run process
exited with signal 9 (SIGKILL)").

Each line is masked (every secret value of the run's resources, at least `MIN_SECRET` characters,
becomes `MASK`) before it is stored or published. Lines are stored in batches (`flush_interval`):
one INSERT into `run_logs` and one realtime `run_logs` frame per batch, in one transaction. A
run's stored output is bounded (`max_bytes`): past it one truncation line is stored, then nothing
but the final `system` line. A batch that cannot be stored (database outage) is kept, bounded,
and retried with the next one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypedDict

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from icp_common.outbox import OutboxMessage
from icp_common.streams import realtime_subject

from ..db import outbox, with_retry
from ..formats import pg_json_value
from ..runs.models import RunLog
from .events import RunRef, clean_text
from .protocol import EventMessage

log = logging.getLogger(__name__)

TABLE = "run_logs"  # also the realtime frame's `table` (opt-in at /api/ws: `?subscribe=run_logs`)
MASK = "****"
MIN_SECRET = 4  # shorter values would mask ordinary words
MAX_LINE = 16 * 1024  # characters of one stored line
MAX_BYTES = 10 * 1024 * 1024  # stored output of one run
MAX_FRAME_BYTES = 256 * 1024  # a realtime frame stays well under NATS's payload limit
FLUSH_INTERVAL = 0.25
STREAMS = ("stdout", "stderr", "logging", "system")


class LogLine(TypedDict):
    timestamp: datetime
    stream: str
    asset: str | None
    message: str


def masker(secrets: Iterable[str]) -> list[str]:
    """The secret values to hide, longest first (a secret containing another is hidden whole)."""
    return sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def parse_timestamp(value: str | None) -> datetime:
    """A reported time (aware), else now."""
    try:
        stamp = datetime.fromisoformat(value) if value else datetime.now(UTC)
    except ValueError:
        return datetime.now(UTC)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def exit_line(code: int | None) -> str:
    """The final line of a run whose process ended before reporting the run's end."""
    if code is not None and code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        return f"run process exited with signal {-code}{name}"
    return f"run process exited with code {code}"


class RunLogs:
    def __init__(
        self,
        run: RunRef,
        sessions: async_sessionmaker[AsyncSession],
        secrets: Iterable[str] = (),
        *,
        flush_interval: float = FLUSH_INTERVAL,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.run = run
        self.sessions = sessions
        self.secrets = masker(secrets)
        self.flush_interval = flush_interval
        self.max_bytes = max_bytes
        self.size = 0  # bytes accepted so far
        self.truncated = False
        self.pending: list[LogLine] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self._closed = False
        self._late: set[asyncio.Task[None]] = set()
        self._storing: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"run-{self.run.id}-logs")

    def add(self, stream: str, message: str, *, asset: str | None = None, timestamp: datetime | None = None) -> None:
        """One line (masked, bounded); past the run's bound only `system` lines are kept."""
        text = clean_text(mask(message, self.secrets), MAX_LINE) or ""
        size = len(text.encode()) + 1
        if stream != "system":
            if self.truncated:
                return
            if self.size + size > self.max_bytes:
                self.truncated = True
                stream, asset = "system", None
                text = f"[log truncated: this run's output exceeded {self.max_bytes} bytes; later lines were dropped]"
            else:
                self.size += size
        self.pending.append(
            {"timestamp": timestamp or datetime.now(UTC), "stream": stream, "asset": asset, "message": text}
        )
        self._wake.set()
        if self._closed:  # a straggler (its pipe was read late): stored on its own, not lost
            task = asyncio.get_running_loop().create_task(self.flush())
            self._late.add(task)
            task.add_done_callback(self._late.discard)

    def event(self, message: EventMessage) -> None:
        """Two kinds of events are log lines too: `context.logger` messages (`log` events) and an
        asset's failure (its error and traceback: why the run failed)."""
        meta = message["meta"]
        asset = None if meta.get("asset_key") is None else str(meta["asset_key"])
        stamp = parse_timestamp(message["ts"])
        if message["type"] == "log":
            self.add(
                "logging", f"{meta.get('level') or 'INFO'} {meta.get('message') or ''}", asset=asset, timestamp=stamp
            )
        elif message["type"] == "asset_failed":
            text = str(meta.get("message") or meta.get("error") or "asset failed")
            if meta.get("traceback"):
                text += "\n" + str(meta["traceback"]).rstrip()
            self.add("system", text, asset=asset, timestamp=stamp)

    def sink(self, stream: str, line: str) -> None:
        """A line of the run process's stdout or stderr (`pool.OutputSink`)."""
        self.add(stream, line)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval)  # lines arriving meanwhile join the batch
            self._wake.clear()
            # Shielded: `close` cancels this loop, and a batch being stored would be lost with it
            # (taken from `pending`, its transaction rolled back); `close`'s own flush waits for it.
            self._storing = asyncio.ensure_future(self.flush())
            await asyncio.shield(self._storing)

    async def flush(self) -> None:
        async with self._flushing:
            batch, self.pending = self.pending, []
            if not batch:
                return
            try:
                await with_retry(self.sessions, store, self.run, batch)
            except Exception as exc:
                log.warning("run %s: %d log lines not stored yet (%s)", self.run.id, len(batch), exc)
                self.pending = batch + self.pending
                self._wake.set()

    async def close(self, final: str | None = None) -> None:
        """Stop the periodic flush, add the `final` line (if any) and store what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if final is not None:
            self.add("system", final)
        await self.flush()
        self._closed = True


async def store(session: AsyncSession, run: RunRef, lines: list[LogLine]) -> None:
    """One INSERT of the lines, and their realtime frame(s) in the same transaction."""
    rows = [{"run_id": run.id, "org_id": run.org_id, **line} for line in lines]
    seqs = (await session.scalars(insert(RunLog).returning(RunLog.seq, sort_by_parameter_order=True), rows)).all()
    items = [public(seq, line) for seq, line in zip(seqs, lines, strict=True)]
    await outbox.enqueue_many(session, frames(run, items))


def public(seq: int, line: LogLine) -> dict[str, Any]:
    """A line as the API and the realtime frame show it."""
    return {
        "seq": seq,
        "timestamp": pg_json_value(line["timestamp"]),
        "stream": line["stream"],
        "asset": line["asset"],
        "message": line["message"],
    }


def frames(run: RunRef, items: list[dict[str, Any]]) -> list[OutboxMessage]:
    """`{"table": "run_logs", "event": "INSERT", "record": {"run_id", "org_id", "lines"}}`, the
    lines split so that no frame exceeds `MAX_FRAME_BYTES`."""
    subject = realtime_subject(str(run.org_id), TABLE)
    out: list[OutboxMessage] = []
    chunk: list[dict[str, Any]] = []
    size = 0
    for item in items:
        item_size = len(item["message"].encode()) + 200
        if chunk and size + item_size > MAX_FRAME_BYTES:
            out.append(_frame(subject, run, chunk))
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        out.append(_frame(subject, run, chunk))
    return out


def _frame(subject: str, run: RunRef, lines: list[dict[str, Any]]) -> OutboxMessage:
    record = {"run_id": str(run.id), "org_id": str(run.org_id), "lines": lines}
    return OutboxMessage(subject, {"table": TABLE, "event": "INSERT", "record": record})
