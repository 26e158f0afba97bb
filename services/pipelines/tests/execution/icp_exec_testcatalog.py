"""Catalog components of the execution tests (importable by the worker's child processes through
PYTHONPATH): a standalone asset that takes its time, and a partitioned one that fails on chosen
days."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

import interloper as il
from interloper.partitioning import PartitionConfig
from interloper.partitioning.time import TimePartitionConfig


def _note_pid(directory: str, name: str) -> None:
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / name).write_text(str(os.getpid()))


class SlowAsset(il.Asset):
    """Writes its process id to `<pid_dir>/slow` (if set), logs, then sleeps `seconds`."""

    key: ClassVar[str] = "exec_slow"
    seconds: float = 30.0
    pid_dir: str = ""

    def data(self, context: il.ExecutionContext) -> list[dict[str, Any]]:
        _note_pid(self.pid_dir, "slow")
        context.logger.info(f"sleeping {self.seconds} s")
        time.sleep(self.seconds)
        return [{"slept": self.seconds}]


class DailyAsset(il.Asset):
    """Partitioned by date: fails on the days in `fail_on`; takes `seconds` on the days in
    `slow_on` (every day if empty), writing its process id to `<pid_dir>/<day>` first."""

    key: ClassVar[str] = "exec_daily"
    partitioning: ClassVar[PartitionConfig | None] = TimePartitionConfig(column="date")
    seconds: float = 0.0
    fail_on: list[str] = []
    slow_on: list[str] = []
    pid_dir: str = ""

    def data(self, context: il.ExecutionContext) -> list[dict[str, Any]]:
        day = context.partition_date.isoformat()
        if day in self.fail_on:
            raise RuntimeError(f"no data for {day}")
        if not self.slow_on or day in self.slow_on:
            _note_pid(self.pid_dir, day)
            time.sleep(self.seconds)
        return [{"date": day}]


class NoisyAsset(il.Asset):
    """Prints to stdout (must not disturb the worker protocol) and logs `count` lines."""

    key: ClassVar[str] = "exec_noisy"
    count: int = 3

    def data(self, context: il.ExecutionContext) -> list[dict[str, Any]]:
        print("stdout of user code\n{not json")
        for i in range(self.count):
            context.logger.info(f"line {i}")
        return [{"n": self.count}]


class ReaderAsset(il.Asset):
    """Partitioned; reads an upstream asset (wired with a dependency `events`) and counts its rows."""

    key: ClassVar[str] = "exec_reader"
    partitioning: ClassVar[PartitionConfig | None] = TimePartitionConfig(column="date")

    def data(self, context: il.ExecutionContext, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        context.logger.info(f"read {len(events)} rows")
        return [{"date": context.partition_date.isoformat(), "rows": len(events)}]


PATHS = [
    "icp_exec_testcatalog.SlowAsset",
    "icp_exec_testcatalog.DailyAsset",
    "icp_exec_testcatalog.NoisyAsset",
    "icp_exec_testcatalog.ReaderAsset",
]


class EnvAsset(il.Asset):
    """Logs the names and values of its process's environment (what user code could exfiltrate)."""

    key: ClassVar[str] = "exec_env"

    def data(self, context: il.ExecutionContext) -> list[dict[str, Any]]:
        context.logger.info("environ " + " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())))
        return [{"n": len(os.environ)}]


class ChattyAsset(il.Asset):
    """Writes to stdout, stderr and Python `logging` (run logs, issue 19); then fails if `fail`,
    kills its own process with signal 9 if `crash`, and first prints `bulk` lines of 1 KiB if set."""

    key: ClassVar[str] = "exec_chatty"
    fail: bool = False
    crash: bool = False
    bulk: int = 0

    def data(self, context: il.ExecutionContext) -> list[dict[str, Any]]:
        import logging
        import signal
        import sys

        print("hello from stdout")
        print("hello from stderr", file=sys.stderr)
        logging.getLogger("user.code").warning("hello from logging")
        context.logger.info("hello from context.logger")
        for i in range(self.bulk):
            print(f"{i:06d} " + "x" * 1017)
        if self.crash:
            print("last words before the crash")
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fail:
            raise RuntimeError("chatty asset failed on purpose")
        return [{"ok": True}]


class SecretConnection(il.Connection):
    """A user name and a secret token (run logs must never show the token)."""

    key: ClassVar[str] = "exec_secret_connection"

    user: str = il.InputField(description="User name")
    token: str = il.SecretField(description="API token")


class SecretSource(il.Source):
    """One asset that prints and logs the token it was given (as careless code does)."""

    key: ClassVar[str] = "exec_secret_probe"
    resource_types: ClassVar[dict[str, type[il.Resource]]] = {"connection": SecretConnection}

    @il.asset(resources={"connection": SecretConnection})  # type: ignore[misc,untyped-decorator]
    def leaky(self, connection: SecretConnection) -> list[dict[str, Any]]:
        import logging

        print(f"connecting as {connection.user} with {connection.token}")
        logging.getLogger("user.code").info("token=%s", connection.token)
        return [{"ok": 1}]
