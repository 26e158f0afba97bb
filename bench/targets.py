"""The two systems under test behind one small interface: how to sign in, where the API and the
runs table are, which processes belong to it, and the benchmark's own housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

TERMINAL = ("success", "failed", "canceled")


@dataclass
class Target:
    name: str  # "ours" | "reference"
    base_url: str
    dsn: str  # the database holding `runs`
    org_ids: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/api/ws"

    async def new_session(self, email: str) -> str:
        """A session cookie value for a new user `email` (no organisation yet)."""
        raise NotImplementedError

    def pids(self) -> dict[str, int]:
        raise NotImplementedError

    def hold_worker(self) -> None:
        """Nothing executes runs until `release_worker` (the reference's API never executes any)."""

    def release_worker(self) -> None:
        pass

    async def cancel_backlog(self, within: float = 60.0) -> dict[str, Any]:
        """Cancel the benchmark organisations' runs that are still queued or pending (a direct UPDATE:
        housekeeping between scenarios, so a backlog of one scenario never loads the next), then
        wait until no run of theirs is dispatched or running."""
        ids = [uuid.UUID(o) for o in self.org_ids]
        conn = await asyncpg.connect(self.dsn)
        try:
            status = await conn.execute(
                "UPDATE runs SET status = 'canceled', completed_at = now() "
                "WHERE org_id = ANY($1::uuid[]) AND status IN ('queued', 'pending')",
                ids,
            )
            canceled = int(status.split()[-1])
            deadline = time.monotonic() + within
            inflight = 0
            while True:
                inflight = await conn.fetchval(
                    "SELECT count(*) FROM runs WHERE org_id = ANY($1::uuid[]) AND status IN ('dispatched', 'running')",
                    ids,
                )
                if inflight == 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)
            return {"canceled": canceled, "still_inflight": inflight}
        finally:
            await conn.close()

    async def unfinished(self) -> int:
        ids = [uuid.UUID(o) for o in self.org_ids]
        conn = await asyncpg.connect(self.dsn)
        try:
            value: int = await conn.fetchval(
                "SELECT count(*) FROM runs WHERE org_id = ANY($1::uuid[]) "
                "AND status NOT IN ('success', 'failed', 'canceled')",
                ids,
            )
            return value
        finally:
            await conn.close()


@dataclass
class OursTarget(Target):
    """Our stack through Traefik; sessions from the local stack's dev login."""

    data_dir: Path = Path(".")
    held: list[psutil.Process] = field(default_factory=list)

    def hold_worker(self) -> None:
        """SIGSTOP our worker and its run processes: the API alone is measured, as the reference's
        (its API process executes nothing). Called with no run in flight (after `cancel_backlog`);
        runs posted meanwhile stay queued and are canceled before `release_worker`."""
        if self.held:
            return
        pids = self.pids()
        # Every worker replica (--replicas pipelines-worker=N): one left running would execute the runs.
        names = self.stack_info().get("replicas", {}).get("pipelines-worker", ["pipelines-worker"])
        for name in names:
            if (pid := pids.get(name)) is not None:
                worker = psutil.Process(pid)
                self.held += [worker, *worker.children(recursive=True)]
        for proc in self.held:
            proc.suspend()

    def release_worker(self) -> None:
        for proc in self.held:
            with contextlib.suppress(psutil.Error):
                proc.resume()
        self.held = []

    async def new_session(self, email: str) -> str:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as client:
            r = await client.get("/api/auth/dev-login", params={"email": email})
            if r.status_code != 302 or "session_token" not in r.cookies:
                raise RuntimeError(f"dev-login for {email}: {r.status_code} {r.text[:200]}")
            return str(r.cookies["session_token"])

    def stack_info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.data_dir / "stack.json").read_text(encoding="utf-8"))
        return data

    def pids(self) -> dict[str, int]:
        try:
            components = self.stack_info()["components"]
        except (OSError, ValueError, KeyError):
            return {}
        return {name: int(c["pid"]) for name, c in components.items() if c.get("pid")}


@dataclass
class ReferenceTarget(Target):
    """The reference API served directly by its uvicorn; sessions minted in its database (it only
    has Google sign-in, which cannot run offline: spec section 0)."""

    pid_source: Any = None  # bench.reference.Reference

    async def new_session(self, email: str) -> str:
        token = secrets.token_urlsafe(48)  # what the reference's own login issues
        conn = await asyncpg.connect(self.dsn)
        try:
            user_id = await conn.fetchval(
                "INSERT INTO profiles (email, name, google_id) VALUES ($1, $2, $3) RETURNING id",
                email,
                email.split("@", 1)[0],
                f"bench-{uuid.uuid4().hex}",
            )
            await conn.execute(
                "INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ($1, $2, now() + interval '30 days')",
                user_id,
                hashlib.sha256(token.encode()).hexdigest(),
            )
        finally:
            await conn.close()
        return token

    def pids(self) -> dict[str, int]:
        return dict(self.pid_source.pids()) if self.pid_source is not None else {}
