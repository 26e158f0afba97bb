"""Run processes get an allow-listed environment: user code cannot read the platform's secrets
(internal secret, database and NATS credentials) from its environment."""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path
from typing import Any

import pytest

from icp_pipelines.execution.pool import Child, ChildError, RunProcessConfig, run_environment

from .builders import asset_job, run
from .conftest import SECRET, events_of, wait_run

PLATFORM = {
    "INTERLOPER_INTERNAL_SECRET": "internal-secret-must-not-leak",
    "INTERLOPER_POSTGRES_PASSWORD": "pg-password-must-not-leak",
    "INTERLOPER_NATS_PASSWORD": "nats-password-must-not-leak",
    "INTERLOPER_NATS_URL": "nats://pipelines:nats-url-must-not-leak@127.0.0.1:4222",
    "INTERLOPER_SECRETS_ENCRYPTION_KEY": "encryption-key-must-not-leak",
}


def _read(path: str) -> str:
    return Path(path).read_bytes().decode()


def _environ_of(pid: int) -> dict[str, str]:
    raw = _read(f"/proc/{pid}/environ")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


async def test_a_pool_child_has_none_of_the_workers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PLATFORM.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    child = await Child.start([], 60)
    try:
        environ = _environ_of(child.pid)
    finally:
        await child.close()
    leaked = {k: v for k, v in environ.items() if k in PLATFORM or any(s in v for s in PLATFORM.values())}
    assert leaked == {}
    assert environ["PATH"] == os.environ["PATH"]
    assert environ["LC_ALL"] == "C.UTF-8"


async def test_extra_names_are_passed_only_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_API_KEY", "for-the-catalog")
    assert "CATALOG_API_KEY" not in run_environment(os.environ)
    assert run_environment(os.environ, ["CATALOG_API_KEY"])["CATALOG_API_KEY"] == "for-the-catalog"


def _executable_by(uid: int, gid: int, path: str) -> bool:
    """Whether `uid` may execute `path` (every directory on the way searchable)."""
    import subprocess

    probe = subprocess.run(["test", "-x", path], user=uid, group=gid, extra_groups=[], check=False)
    return probe.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")
async def test_run_processes_drop_to_the_configured_uid() -> None:
    nobody = pwd.getpwnam("nobody")
    config = RunProcessConfig(run_environment(os.environ), uid=nobody.pw_uid, gid=nobody.pw_gid)
    if not _executable_by(nobody.pw_uid, nobody.pw_gid, sys.executable):
        # This interpreter lives where nobody may not go (e.g. under /root): the exec as `nobody`
        # is refused, which shows the switch happened before the exec; a clear ChildError results.
        with pytest.raises(ChildError, match=f"uid {nobody.pw_uid}.*Permission denied"):
            await Child.start([], 60, config)
        return
    child = await Child.start([], 60, config)
    try:
        status = _read(f"/proc/{child.pid}/status")
    finally:
        await child.close()
    fields = {line.split(":")[0]: line.split()[1:] for line in status.splitlines()}
    assert set(fields["Uid"]) == {str(nobody.pw_uid)} and set(fields["Gid"]) == {str(nobody.pw_gid)}
    assert fields["Groups"] == []


@pytest.mark.usefixtures("cluster")
async def test_user_code_of_a_run_sees_no_platform_secret(orgs: Any) -> None:
    org = await orgs()
    job = await asset_job(org.editor, "exec_env")
    run_id = await run(org.editor, job["id"])
    assert await wait_run(org.viewer, run_id, ("success", "failed")) == "success"
    [line] = [e["message"] for e in await events_of(org.viewer, run_id) if e["event_type"] == "log"]
    assert line.startswith("environ ")
    names = {item.split("=", 1)[0] for item in line.split()[1:]}
    assert SECRET not in line
    assert not {n for n in names if n.startswith(("INTERLOPER_POSTGRES", "INTERLOPER_NATS", "INTERLOPER_INTERNAL"))}
    assert "PATH" in names and "INTERLOPER_CATALOG" in names
