"""A run's process: `python -m icp_pipelines.execution.child`, started (and kept warm) by a worker.

It executes one run at a time with the interloper-core runner and reports every event of that run
to the worker, which stores them under the run's id. Only the events of the current run are
reported: each carries the run id in its metadata and anything else is dropped, so runs can never
mix their events (spec 6.2, 12.2 #15). It has no database connection and no credentials beyond
the decrypted resources of the run it is given.

The protocol is `protocol` (one JSON object per line; the process's own stdout is redirected to
stderr so that prints of user code never reach it).

The child dies with its worker (PR_SET_PDEATHSIG, and a watchdog on the parent pid). Cancelling a
run kills the child's process group; the worker starts a fresh one."""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import IO, Any, Literal

from icp_pipelines.execution import protocol
from icp_pipelines.execution.protocol import EVENT_FIELDS, MAX_TEXT, EventMessage, MetaValue, RunMessage
from icp_pipelines.tenant import ORG_ENV

TERMINAL_EVENTS = ("run_completed", "run_failed")

log = logging.getLogger("icp_pipelines.execution.child")


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

    def begin(self, run_id: str) -> None:
        with self._lock:
            self.run_id, self._terminal = run_id, None

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
            if event.type.value in TERMINAL_EVENTS:
                self._terminal = message
                return
            self._last = max(self._last, event.timestamp)
            self.channel.send(message)


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


def execute(channel: Channel, forwarder: Forwarder, message: RunMessage) -> None:
    from interloper.component import ComponentSpec
    from interloper.dag import DAG
    from interloper.events import EventBus
    from interloper.partitioning.time import TimePartition
    from interloper.runner import ExecutionStatus, build_runner

    run_id = str(message["run_id"])
    org_id = str(message["org_id"])
    # The organisation this process serves (a pool's child only ever gets runs of its first one),
    # for catalog code that keeps tenants apart (icp_pipelines.tenant).
    if os.environ.setdefault(ORG_ENV, org_id) != org_id:
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
        channel.send(protocol.done("failed", str(exc)))
        return
    metadata = {"run_id": run_id, "backfill_id": message.get("backfill_id")}
    status: Literal["success", "failed"] = "failed"
    error: str | None = None
    forwarder.begin(run_id)
    try:
        runner = runner_cls(**{"fail_fast": True, "reraise": False, **config})
        result = runner.run(dag, partition_or_window, metadata=metadata)
        status = "success" if result.status == ExecutionStatus.COMPLETED else "failed"
    except Exception as exc:
        error = str(exc) or type(exc).__name__
        log.warning("run %s raised: %s\n%s", run_id, error, traceback.format_exc())
    finally:
        EventBus.flush(timeout=30)
        reported = forwarder.end()
    channel.send(protocol.done(status, error, reported=reported))


def main() -> None:
    channel = Channel()
    _die_with_parent()
    from icp_common.logs import configure_logging

    configure_logging(
        "interloper-pipelines-run",
        os.environ.get("INTERLOPER_LOG_LEVEL", "INFO"),
        os.environ.get("INTERLOPER_LOG_FORMAT", "json"),
    )
    init = channel.receive()
    if init is None or init["t"] != "init":
        sys.exit(2)
    _warm(list(init.get("catalog") or []))
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
