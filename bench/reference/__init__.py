"""The reference implementation (interloper-api 0.2.0) as a benchmark target: its own virtualenv,
its own embedded PostgreSQL, its API process and (for the execution scenarios) its worker."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from icp_stack.infra import ManagedProcess, PostgresServer, ProcessSpec, http_ok
from icp_stack.ports import free_port

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
DEFAULT_VENV = HERE.parent / ".venv-reference"
REPO = HERE.parent.parent
# The demo catalog is pure interloper-core 0.3 code; the reference imports it from our source tree
# (only icp_pipelines.demo is imported: icp_pipelines/__init__.py is empty).
DEMO_PYTHONPATH = REPO / "services" / "pipelines" / "src"

# Alembic revision 001 of the reference runs `CREATE EXTENSION IF NOT EXISTS pgcrypto` (for
# gen_random_uuid() on PostgreSQL < 13). The embedded PostgreSQL 18 is built without pgcrypto, and
# gen_random_uuid() is a core function since 13, so an empty extension satisfies the migration.
# It is found through PostgreSQL 18's extension_control_path; nothing of the reference is changed.
PGCRYPTO_CONTROL = (
    "comment = 'empty stand-in: gen_random_uuid() is built into PostgreSQL >= 13 (benchmark of the reference)'\n"
    "default_version = '1.3'\nrelocatable = true\n"
)


class ReferenceError(RuntimeError):
    pass


def _uv() -> str:
    exe = os.environ.get("UV") or shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(exe).exists() and shutil.which(exe) is None:
        raise ReferenceError("uv not found (run `make install` first)")
    return exe


def _clean_env() -> dict[str, str]:
    """Our environment without anything that would configure the reference by accident."""
    drop = ("INTERLOPER_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def ensure_venv(venv: Path = DEFAULT_VENV, log: Path | None = None) -> Path:
    """Create (or reuse) the reference's virtualenv from requirements.txt; return its bin dir."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes() + b"py3.11").hexdigest()
    stamp = venv / ".bench-requirements.sha256"
    interloper = venv / "bin" / "interloper"
    if interloper.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return venv / "bin"
    shutil.rmtree(venv, ignore_errors=True)
    env = _clean_env()
    out = log.open("a", encoding="utf-8") if log else subprocess.DEVNULL
    try:
        for argv in (
            [_uv(), "venv", "--quiet", "--python", "3.11", str(venv)],
            [_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-r", str(REQUIREMENTS)],
        ):
            result = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=600)
            if result.returncode != 0:
                raise ReferenceError(f"{' '.join(argv)} failed (exit {result.returncode}; log: {log})")
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    stamp.write_text(wanted + "\n")
    return venv / "bin"


def installed_versions(bin_dir: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({n: m.version(n) for n in ('interloper-api','interloper-db','interloper-core',"
        "'interloper-scheduler','fastapi','starlette','uvicorn','sqlalchemy','sqlmodel','pydantic','psycopg2-binary')}))"
    )
    out = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=False)
    import json

    try:
        data: dict[str, str] = json.loads(out.stdout)
    except ValueError:
        return {}
    data["python"] = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return data


@dataclass
class Reference:
    """The reference's PostgreSQL + API (+ worker on demand), all under ``work_dir``."""

    work_dir: Path
    bin_dir: Path
    catalog_json: str
    worker_poll_interval: int | None = None
    pg: ManagedProcess | None = None
    api: ManagedProcess | None = None
    worker: ManagedProcess | None = None
    pg_port: int = 0
    api_port: int = 0
    database: str = "interloper"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{self.database}"

    def _env(self) -> dict[str, str]:
        env = _clean_env()
        env.update(
            {
                "PATH": f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONPATH": str(DEMO_PYTHONPATH),
                "PYTHONUNBUFFERED": "1",
                "INTERLOPER_POSTGRES_HOST": "127.0.0.1",
                "INTERLOPER_POSTGRES_PORT": str(self.pg_port),
                "INTERLOPER_POSTGRES_USER": "postgres",
                "INTERLOPER_POSTGRES_PASSWORD": "",
                "INTERLOPER_POSTGRES_DATABASE": self.database,
                "INTERLOPER_AUTH_COOKIE_SECURE": "false",
                "INTERLOPER_CATALOG": self.catalog_json,
                "INTERLOPER_DATA_DIR": str(self.work_dir / "demo-data"),
            }
        )
        if self.worker_poll_interval is not None:
            env["INTERLOPER_WORKER_POLL_INTERVAL"] = str(self.worker_poll_interval)
        return env

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        ext = self.work_dir / "pg-extensions"
        (ext / "extension").mkdir(parents=True, exist_ok=True)
        (ext / "extension" / "pgcrypto.control").write_text(PGCRYPTO_CONTROL)
        (ext / "extension" / "pgcrypto--1.3.sql").write_text("-- empty: see pgcrypto.control\n")
        for path in (ext, ext / "extension", *(ext / "extension").iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        self.pg_port = free_port()
        # The same server settings as our stack's PostgreSQL (durable, low-memory defaults).
        server = PostgresServer(
            self.work_dir / "postgres",
            self.pg_port,
            durable=True,
            settings={"extension_control_path": f"{ext}:$system"},
        )
        self.pg = ManagedProcess(server.spec(name="reference-postgres"), self.work_dir / "postgres.log")
        self.pg.start()
        self.api_port = free_port()
        argv = [
            str(self.bin_dir / "interloper"),
            "app",
            "--api",
            "--no-cron",
            "--no-worker",
            "--no-reaper",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.api_port),
        ]
        spec = ProcessSpec(
            name="reference-api",
            argv=argv,
            env=self._env(),
            cwd=str(self.work_dir),  # no interloper.yaml there: environment only
            ready=lambda: http_ok(f"{self.base_url}/api/health"),
            ready_timeout=120.0,
        )
        self.api = ManagedProcess(spec, self.work_dir / "api.log")
        self.api.start()

    def start_worker(self) -> None:
        """The reference's queue worker in its own process, as its Helm chart runs it."""
        log = self.work_dir / "worker.log"
        log.unlink(missing_ok=True)

        def ready() -> bool:
            try:
                return "Started services: worker" in log.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return False

        spec = ProcessSpec(
            name="reference-worker",
            argv=[str(self.bin_dir / "interloper"), "app", "--no-api", "--worker", "--no-cron", "--no-reaper"],
            env=self._env(),
            cwd=str(self.work_dir),
            ready=ready,
            ready_timeout=120.0,
        )
        self.worker = ManagedProcess(spec, log)
        self.worker.start()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop(grace=8.0)
            self.worker = None

    def pids(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, proc in (("postgres", self.pg), ("api", self.api), ("worker", self.worker)):
            if proc is not None and proc.pid is not None and proc.running:
                out[name] = proc.pid
        return out

    def stop(self) -> None:
        self.stop_worker()
        for proc in (self.api, self.pg):
            if proc is not None:
                try:
                    proc.stop(grace=8.0)
                except Exception as exc:  # pragma: no cover - best effort at exit
                    print(f"bench: stopping {proc.spec.name}: {exc}", file=sys.stderr)
        self.api = self.pg = None


def wait_until(probe: object, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(probe) and probe():
            return True
        time.sleep(interval)
    return False
