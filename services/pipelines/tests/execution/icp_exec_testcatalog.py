"""Catalog components of the execution tests (importable by the worker's child processes through
PYTHONPATH): a standalone asset that takes its time, and a partitioned one that fails on chosen
days."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import interloper as il
from interloper.partitioning import PartitionConfig
from interloper.partitioning.time import TimePartitionConfig


class SlowAsset(il.Asset):
    """Logs, then sleeps `seconds`."""

    key: ClassVar[str] = "exec_slow"
    seconds: float = 30.0

    def data(self, context: il.ExecutionContext) -> list[dict[str, Any]]:
        context.logger.info(f"sleeping {self.seconds} s")
        time.sleep(self.seconds)
        return [{"slept": self.seconds}]


class DailyAsset(il.Asset):
    """Partitioned by date: takes `seconds`, fails on the days listed in `fail_on`."""

    key: ClassVar[str] = "exec_daily"
    partitioning: ClassVar[PartitionConfig | None] = TimePartitionConfig(column="date")
    seconds: float = 0.0
    fail_on: list[str] = []

    def data(self, context: il.ExecutionContext) -> list[dict[str, Any]]:
        day = context.partition_date.isoformat()
        time.sleep(self.seconds)
        if day in self.fail_on:
            raise RuntimeError(f"no data for {day}")
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


PATHS = [
    "icp_exec_testcatalog.SlowAsset",
    "icp_exec_testcatalog.DailyAsset",
    "icp_exec_testcatalog.NoisyAsset",
]
