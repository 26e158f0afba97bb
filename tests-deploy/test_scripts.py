"""deploy/k8s/deploy.sh (migrations before the rollout) against a recording stand-in for
kubectl, and deploy/docker/init-env.py (the .env of `make compose-up`)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from deploylib import DOCKER_DIR, ENV_EXAMPLE, K8S_DIR, ROOT, parse_dotenv

DEPLOY = K8S_DIR / "deploy.sh"

FAKE_KUBECTL = """#!/usr/bin/env bash
echo "$*" >> "$KUBECTL_LOG"
if [[ " $* " == *" get job "* ]]; then
  n=$(grep -c " get job " "$KUBECTL_LOG")
  if (( n < 2 )); then echo ""; else echo "$JOB_STATE"; fi
fi
if [[ " $* " == *" logs "* ]]; then echo "identity: boom"; fi
exit 0
"""


def _run(tmp_path: Path, overlay: str, job_state: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    fake = tmp_path / "kubectl"
    fake.write_text(FAKE_KUBECTL, encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.log"
    env = {
        **os.environ,
        "KUBECTL": str(fake),
        "KUBECTL_ARGS": "--context test",
        "KUBECTL_LOG": str(log),
        "JOB_STATE": job_state,
        "DEPLOY_POLL_SECONDS": "0.05",
    }
    proc = subprocess.run(
        ["bash", str(DEPLOY), f"deploy/k8s/overlays/{overlay}", "--timeout", "60"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, log.read_text(encoding="utf-8").splitlines() if log.exists() else []


@pytest.mark.parametrize(("overlay", "namespace"), [("dev", "interloper-dev"), ("production", "interloper")])
def test_migrations_before_the_rollout(tmp_path: Path, overlay: str, namespace: str) -> None:
    proc, calls = _run(tmp_path, overlay, "SuccessCriteriaMet Complete")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = f"deploy/k8s/overlays/{overlay}"
    assert calls[0] == f"--context test -n {namespace} delete job interloper-migrate --ignore-not-found --wait=true"
    assert calls[1] == f"--context test apply -k {path} --selector interloper.dev/stage=pre"
    gets = [i for i, c in enumerate(calls) if " get job interloper-migrate " in f" {c} "]
    assert len(gets) == 2, "polls until the Job completes"
    full = calls.index(f"--context test apply -k {path}")
    assert full > gets[-1], "everything else is applied after the migrations"
    assert any("rollout status deployment" in c for c in calls[full:])


def test_failed_migrations_stop_the_deployment(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, "production", "Failed")
    assert proc.returncode == 1
    assert "migrations failed" in proc.stderr and "identity: boom" in proc.stderr
    assert "--context test apply -k deploy/k8s/overlays/production" not in calls
    assert not any("rollout" in c for c in calls)


def test_usage_errors(tmp_path: Path) -> None:
    assert subprocess.run(["bash", str(DEPLOY)], capture_output=True).returncode == 2
    assert subprocess.run(["bash", str(DEPLOY), str(tmp_path)], capture_output=True).returncode == 2
    assert subprocess.run(["bash", "-n", str(DEPLOY)]).returncode == 0


def test_init_env_makes_fresh_secrets_once(tmp_path: Path) -> None:
    script = DOCKER_DIR / "init-env.py"
    out = tmp_path / ".env"
    cmd = [sys.executable, str(script), "--example", str(ENV_EXAMPLE), "--output", str(out)]
    assert subprocess.run(cmd, capture_output=True, check=True).returncode == 0
    example, made = parse_dotenv(ENV_EXAMPLE.read_text(encoding="utf-8")), parse_dotenv(out.read_text(encoding="utf-8"))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    for name in ("INTERLOPER_INTERNAL_SECRET", "INTERLOPER_POSTGRES_PASSWORD", "INTERLOPER_ENCRYPTION_KEYS"):
        assert made[name] and made[name] != example[name], name
    keys = json.loads(made["INTERLOPER_ENCRYPTION_KEYS"])
    assert list(keys) == [made["INTERLOPER_ENCRYPTION_ACTIVE_KEY"]]
    assert len(base64.b64decode(next(iter(keys.values())))) == 32
    assert set(made) == set(example)
    replaced = {"INTERLOPER_INTERNAL_SECRET", "INTERLOPER_POSTGRES_PASSWORD", "INTERLOPER_ENCRYPTION_KEYS"}
    replaced.add("INTERLOPER_ENCRYPTION_ACTIVE_KEY")
    per_service = {k for k in example if k.startswith(("POSTGRES_", "NATS_")) and k.endswith("_PASSWORD")}
    assert len(per_service) == 9 and all(made[k] != example[k] for k in per_service)
    replaced |= per_service
    assert all(made[k] == v for k, v in example.items() if k not in replaced)
    before = out.read_text(encoding="utf-8")
    subprocess.run(cmd, capture_output=True, check=True)
    assert out.read_text(encoding="utf-8") == before, "an existing .env is never overwritten"
