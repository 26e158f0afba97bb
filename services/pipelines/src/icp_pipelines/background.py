"""The background work of the `scheduler` and `worker` processes, started by the app's lifespan
once the database and NATS are up, stopped before they close; `/readyz` reports it. (Above
`worker` and `scheduler`, which import neither this module nor each other.)"""

from __future__ import annotations

from typing import Literal, Protocol

from icp_common.resources import ServiceResources

from .catalog.loader import CatalogIndex
from .crypto import Cipher
from .settings import Settings

ProcessKind = Literal["api", "scheduler", "worker"]


class _Work(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def check_ready(self) -> bool: ...


class BackgroundProcess:
    def __init__(self, kind: ProcessKind, settings: Settings, catalog: CatalogIndex, cipher: Cipher) -> None:
        self.kind = kind
        self.settings = settings
        self.catalog = catalog
        self.cipher = cipher
        self.work: _Work | None = None

    async def start(self, resources: ServiceResources) -> None:
        if self.kind == "worker":
            from .worker.worker import Worker

            self.work = Worker(self.settings, resources, self.catalog, self.cipher)
        else:
            from .scheduler.scheduler import Scheduler

            self.work = Scheduler(self.settings, resources)
        await self.work.start()

    async def stop(self) -> None:
        if self.work is not None:
            await self.work.stop()

    async def ready(self) -> bool:
        return self.work is not None and await self.work.check_ready()
