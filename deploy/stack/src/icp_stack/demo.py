"""``interloper-stack up --demo``: a demo organisation with a working pipeline for a local user.

Everything goes through the public API (Traefik -> gateway -> services), as a script would, signed
in with a session that ``interloper-identity session create`` mints (so it works with or without
dev login). The pipeline is what a person would build by hand, in the order the web UI needs it:
a config resource, the Demo CSV destination, two sources (``demo_source``; ``demo_live``, whose
asset takes a few seconds and reports progress), a daily job (cron disabled) and its first run.

Idempotent: every object is looked up by name before it is created, so a restart with ``--demo``
adds nothing; the first run is triggered only while the job has no run at all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

DEMO_EMAIL = "demo@example.com"
ORGANISATION = "Demo organisation"
RESOURCE = "Demo config"
DESTINATION = "Demo CSV"
SOURCES = {"demo_source": "Demo Source", "demo_live": "Demo Live"}
JOB = "Demo pipeline"
JOB_CRON = "0 6 * * *"
TIMEOUT = 60.0


class DemoError(RuntimeError):
    """The demo pipeline could not be set up (the stack itself keeps running)."""


@dataclass
class DemoResult:
    email: str
    organisation_id: str
    job_id: str
    run_id: str | None
    """The run triggered now; None when the job already had runs (a restart)."""
    created: list[str] = field(default_factory=list)


async def mint_session(bin_dir: Path, env: Mapping[str, str], email: str) -> str:
    """A session token for ``email`` (the profile is created on first use)."""
    command = [str(bin_dir / "interloper-identity"), "session", "create", "--email", email, "--name", "Demo user"]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise DemoError(f"{' '.join(command[1:3])} did not answer within {TIMEOUT:.0f} s") from None
    lines = out.decode("utf-8", "replace").split()
    if proc.returncode != 0 or not lines:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise DemoError(f"interloper-identity session create failed (exit {proc.returncode}): {' | '.join(tail)}")
    return lines[-1]


class _Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.client.request(method, path, json=body)
        if response.status_code >= 300:
            raise DemoError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    async def find_or_create(self, path: str, match: Mapping[str, str], body: dict[str, Any]) -> tuple[str, bool]:
        """The id of the first item of ``GET path`` with the ``match`` values, created if none."""
        for item in await self.call("GET", path):
            if all(item.get(k) == v for k, v in match.items()):
                return str(item["id"]), False
        created = await self.call("POST", path, body)
        return str(created["id"]), True


async def set_up(
    public_url: str,
    bin_dir: Path,
    env: Mapping[str, str],
    email: str = DEMO_EMAIL,
    log: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    token = await mint_session(bin_dir, env, email)
    try:
        async with httpx.AsyncClient(
            base_url=public_url, cookies={"session_token": token}, timeout=TIMEOUT, trust_env=False
        ) as client:
            return await _build(_Api(client), email, log)
    except (httpx.HTTPError, ValueError) as exc:  # unreachable, or not JSON
        raise DemoError(f"{type(exc).__name__}: {exc}") from exc


async def _build(api: _Api, email: str, log: Callable[[str], None]) -> DemoResult:
    created: list[str] = []
    organisations = await api.call("GET", "/api/organisations")
    organisation = next((o for o in organisations if o["name"] == ORGANISATION), None)
    if organisation is None:
        # Creating it makes it the session's (and the profile's last) organisation.
        organisation = await api.call("POST", "/api/organisations", {"name": ORGANISATION})
        created.append("organisation")
    else:
        await api.call("POST", "/api/auth/switch-org", {"organisation_id": organisation["id"]})

    config_id, new = await api.find_or_create(
        "/api/resources/",
        {"key": "demo_config", "name": RESOURCE},
        {"kind": "config", "key": "demo_config", "name": RESOURCE, "data": {"greeting": "hello", "rows_per_day": 5}},
    )
    created += ["config"] * new
    destination_id, new = await api.find_or_create(
        "/api/destinations/",
        {"key": "demo_csv_destination", "name": DESTINATION},
        {"key": "demo_csv_destination", "name": DESTINATION, "config": {}},
    )
    created += ["destination"] * new
    source_ids = []
    for key, name in SOURCES.items():
        body: dict[str, Any] = {"key": key, "name": name, "config": {}, "destination_ids": [destination_id]}
        if key == "demo_source":
            body["resources"] = {"config": config_id}
        source_id, new = await api.find_or_create("/api/sources/", {"key": key, "name": name}, body)
        source_ids.append(source_id)
        created += [f"source {key}"] * new
    job_id, new = await api.find_or_create(
        "/api/jobs/",
        {"name": JOB},
        # Daily, partitioned like demo_source's events; the cron is off until someone turns it on.
        {"name": JOB, "cron": JOB_CRON, "source_ids": source_ids, "enabled": False, "partitioned": True},
    )
    created += ["job"] * new

    run_id = None
    if not await api.call("GET", f"/api/runs/?job_id={job_id}&limit=1"):
        yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
        queued = await api.call("POST", f"/api/jobs/{job_id}/run", {"partition_date": yesterday})
        run_id = str(queued["run_id"])
        created.append("first run")
    log(
        f"demo: organisation '{ORGANISATION}' for {email}: "
        + (f"created {', '.join(created)}" if created else "already set up, nothing added")
    )
    return DemoResult(email, str(organisation["id"]), job_id, run_id, created)


def sign_in_link(public_url: str, email: str) -> str:
    """Dev login as the demo user, straight into the web UI."""
    return f"{public_url}/api/auth/dev-login?email={quote(email)}&redirect=/"
