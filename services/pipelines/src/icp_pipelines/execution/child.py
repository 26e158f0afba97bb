"""A run's process: `python -m icp_pipelines.execution.child`, started (and kept warm) by a worker.

It executes one run at a time with the interloper-core runner and reports every event of that run
to the worker, which stores them under the run's id. Only the events of the current run are
reported: each carries the run id in its metadata and anything else is dropped, so runs can never
mix their events (spec 6.2, 12.2 #15). It has no database connection and no credentials beyond
the decrypted resources of the run it is given.

The protocol is `protocol` (one JSON object per line; the process's own stdout is redirected to
a separate pipe, `stdout_fd`, so that prints of user code never reach it). The run's output is
its logs (issue 19): the worker reads its stdout and stderr pipes line by line, and records of
Python `logging` are sent as `log` messages (with the asset being executed) while a run is on.

The child dies with its worker (PR_SET_PDEATHSIG, and a watchdog on the parent pid). Cancelling a
run kills the child's process group; the worker starts a fresh one."""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import logging
import os
import signal
import sys
import threading
import time
import traceback
from contextvars import ContextVar
from typing import IO, Any, Literal

from icp_common import telemetry
from icp_pipelines.execution import protocol
from icp_pipelines.execution.protocol import EVENT_FIELDS, MAX_TEXT, EventMessage, MetaValue, RunMessage
from icp_pipelines.tenant import ORG_ENV

TERMINAL_EVENTS = ("run_completed", "run_failed")
ASSET_ENDS: dict[str, str | None] = {"asset_completed": None, "asset_failed": "failed", "asset_canceled": "canceled"}

log = logging.getLogger("icp_pipelines.execution.child")

# The asset whose code runs in this context (set around its `data()` call; asyncio.to_thread and
# tasks copy it), so that its log records name it.
current_asset: ContextVar[str | None] = ContextVar("icp_current_asset", default=None)


class Channel:
    """The protocol pipes (taken over from stdin/stdout)."""

    def __init__(self) -> None:
        self._in: IO[bytes] = os.fdopen(os.dup(0), "rb")
        self._out: IO[bytes] = os.fdopen(os.dup(1), "wb")
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)  # print() of user code goes to stderr
        self._lock = threading.Lock()

    def send(self, message: protocol.Reply) -> None:
        data = protocol.encode(message)
        with self._lock:
            self._out.write(data)
            self._out.flush()

    def receive(self) -> protocol.Command | None:
        """The worker's next message (unknown kinds are skipped); None at the end of its input."""
        while line := self._in.readline():
            if (message := protocol.decode_command(line)) is not None:
                return message
        return None


def _die_with_parent() -> None:
    parent = os.getppid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watchdog() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(70)
            time.sleep(0.5)

    if os.getppid() != parent:
        os._exit(70)
    threading.Thread(target=watchdog, name="parent-watchdog", daemon=True).start()


def _bounded(value: Any) -> MetaValue:
    if isinstance(value, str):
        return protocol.truncate(value, MAX_TEXT)
    if isinstance(value, int | float | bool):
        return value
    return _bounded(str(value))


class Forwarder:
    """EventBus handler: reports the current run's events (called on the bus's thread).

    The run's own end (run_completed/run_failed) is held back and reported last: with fail_fast,
    assets already executing in other threads finish (and report) after the runner decided."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.run_id: str | None = None
        self._terminal: EventMessage | None = None
        self._last = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._lock = threading.Lock()
        # Tracing (None when off): the run's span context, and when each asset started.
        self.trace: Any = None
        self._asset_starts: dict[str, dt.datetime] = {}

    def begin(self, run_id: str) -> None:
        with self._lock:
            self.run_id, self._terminal = run_id, None
            self.trace, self._asset_starts = telemetry.current_context(), {}

    def end(self) -> bool:
        """Report the held end of the run (stamped after every other event); whether there was one."""
        with self._lock:
            self.run_id = None
            terminal, self._terminal = self._terminal, None
            if terminal is None:
                return False
            stamp = max(dt.datetime.fromisoformat(terminal["ts"] or ""), self._last)
            self.channel.send({**terminal, "ts": stamp.isoformat()})
            return True

    def __call__(self, event: Any) -> None:
        meta = event.metadata or {}
        with self._lock:
            if self.run_id is None or str(meta.get("run_id", self.run_id)) != self.run_id:
                return  # not the current run's: never reported under it
            message: EventMessage = {
                "t": "event",
                "type": event.type.value,
                "ts": event.timestamp.isoformat(),
                "meta": {k: _bounded(meta.get(k)) for k in EVENT_FIELDS if meta.get(k) is not None},
            }
            if self.trace is not None:
                self._trace_asset(event.type.value, event.timestamp, meta)
            if event.type.value in TERMINAL_EVENTS:
                self._terminal = message
                return
            self._last = max(self._last, event.timestamp)
            self.channel.send(message)

    def _trace_asset(self, kind: str, stamp: dt.datetime, meta: dict[str, Any]) -> None:
        """An asset's span (child of the run's) from its started/ended events."""
        key = str(meta.get("asset_key"))
        if kind == "asset_started":
            self._asset_starts[key] = stamp
        elif kind in ASSET_ENDS and key in self._asset_starts:
            error = ASSET_ENDS[kind]  # not the error's text: the run's logs have it, masked
            telemetry.record_span(
                f"asset {key}", self.trace, self._asset_starts.pop(key), stamp, error, asset_key=key, run_id=self.run_id
            )


class RunLogHandler(logging.Handler):
    """Every `logging` record during a run, sent as a `log` message (not to the worker's log)."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(logging.DEBUG)
        self.channel = channel
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stamp = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat()
            text = protocol.truncate(self.format(record))
            self.channel.send({"t": "log", "ts": stamp, "asset": current_asset.get(), "message": text})
        except Exception:
            self.handleError(record)


def _track_assets() -> None:
    """Wrap EventBus.emit: an asset's execution start/end sets `current_asset` in its context."""
    from interloper.events import EventBus, EventType

    original = EventBus.emit

    def emit(event_type: Any, *, metadata: dict[str, Any] | None = None) -> None:
        if event_type == EventType.ASSET_EXEC_STARTED:
            key = (metadata or {}).get("asset_key")
            current_asset.set(None if key is None else str(key))
        elif event_type in (EventType.ASSET_EXEC_COMPLETED, EventType.ASSET_EXEC_FAILED):
            current_asset.set(None)
        original(event_type, metadata=metadata)

    EventBus.emit = staticmethod(emit)  # type: ignore[method-assign,assignment]


def _warm(catalog: list[str]) -> None:
    """Import the framework and the catalog before the first run (errors surface at run time)."""
    import interloper.dag
    import interloper.runner  # noqa: F401
    from interloper.utils.imports import import_from_path

    for path in catalog:
        try:
            import_from_path(path)
        except Exception as exc:
            log.warning("catalog path %s does not import: %s", path, exc)


def _end_output() -> None:
    """Flush the run's stdout/stderr and mark their end (the worker reads them up to the mark)."""
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
            os.write(fd, protocol.OUTPUT_MARK)


def execute(channel: Channel, forwarder: Forwarder, message: RunMessage) -> None:
    from interloper.component import ComponentSpec
    from interloper.dag import DAG
    from interloper.partitioning.time import TimePartition
    from interloper.runner import build_runner

    run_id = str(message["run_id"])
    org_id = str(message["org_id"])
    # The organisation this process serves (a pool's child only ever gets runs of its first one),
    # for catalog code that keeps tenants apart (icp_pipelines.tenant).
    if os.environ.setdefault(ORG_ENV, org_id) != org_id:
        _end_output()
        channel.send(protocol.done("failed", "run process of another organisation"))
        return
    try:
        components = [ComponentSpec(**spec).reconstruct() for spec in message["components"]]
        dag = DAG(*components)
        runner_cls, config = build_runner(message["runner"]["type"], message["runner"].get("config") or {})
        partition = message.get("partition")
        partition_or_window = TimePartition(dt.date.fromisoformat(partition)) if partition else None
    except Exception as exc:
        log.info("run %s cannot be built: %s", run_id, exc)
        _end_output()
        channel.send(protocol.done("failed", str(exc)))
        return
    metadata = {"run_id": run_id, "backfill_id": message.get("backfill_id")}
    parent = {"traceparent": traceparent} if (traceparent := message.get("traceparent")) else None
    with telemetry.span("run process", parent, run_id=run_id, org_id=org_id):
        status, error, reported = _run(channel, forwarder, runner_cls, config, dag, partition_or_window, metadata)
    telemetry.flush()  # this process may be killed before the next run
    _end_output()
    channel.send(protocol.done(status, error, reported=reported))


def _run(
    channel: Channel,
    forwarder: Forwarder,
    runner_cls: Any,
    config: dict[str, Any],
    dag: Any,
    window: Any,
    metadata: dict[str, Any],
) -> tuple[Literal["success", "failed"], str | None, bool]:
    """Execute the DAG with the run's logging and event forwarding: (status, error, reported)."""
    from interloper.events import EventBus
    from interloper.runner import ExecutionStatus

    run_id = metadata["run_id"]
    status: Literal["success", "failed"] = "failed"
    error: str | None = None
    forwarder.begin(run_id)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers, root.level = [RunLogHandler(channel)], min(root.level or logging.INFO, logging.INFO)
    try:
        runner = runner_cls(**{"fail_fast": True, "reraise": False, **config})
        result = runner.run(dag, window, metadata=metadata)
        status = "success" if result.status == ExecutionStatus.COMPLETED else "failed"
    except Exception as exc:
        error = str(exc) or type(exc).__name__
        log.warning("run %s raised: %s\n%s", run_id, error, traceback.format_exc())
    finally:
        EventBus.flush(timeout=30)
        root.handlers, root.level = saved
        reported = forwarder.end()
    return status, error, reported


def main() -> None:
    channel = Channel()
    _die_with_parent()
    from icp_common.logs import configure_logging

    configure_logging(
        "interloper-pipelines-run",
        os.environ.get("INTERLOPER_LOG_LEVEL", "INFO"),
        os.environ.get("INTERLOPER_LOG_FORMAT", "json"),
    )
    telemetry.setup("pipelines-run")  # off unless the worker's OTEL_* variables (passed on) configure it
    init = channel.receive()
    if init is None or init["t"] != "init":
        sys.exit(2)
    stdout_fd = init.get("stdout_fd")
    if isinstance(stdout_fd, int):
        os.dup2(stdout_fd, 1)  # the run's prints: their own pipe, read by the worker
        os.close(stdout_fd)
    _warm(list(init.get("catalog") or []))
    _track_assets()
    from interloper.events import EventBus

    forwarder = Forwarder(channel)
    EventBus.subscribe(forwarder)
    channel.send({"t": "ready", "pid": os.getpid()})
    while (message := channel.receive()) is not None:
        if message["t"] == "run":
            execute(channel, forwarder, message)
    EventBus.shutdown()


if __name__ == "__main__":
    main()
