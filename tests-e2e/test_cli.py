"""`interloper-ctl` (clients/cli) against the running stack, through Traefik, as a user runs it: the
installed console script in a subprocess, with an API token created through the API. It triggers
a run and follows it to success (exit 0), follows a failing run (exit 1, the error shown), retries
it after a fix, prints valid JSON with `--output json`, stores a login with mode 0600, and turns a
bad token into one clear error line.

The stack runs the project's demo catalog (as in test_execution.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from icp_pipelines.demo import CATALOG_PATHS
from icp_stack.pytest_plugin import StackHandle

os.environ.setdefault("INTERLOPER_CATALOG", json.dumps(CATALOG_PATHS))

CTL = str(Path(sys.executable).parent / "interloper-ctl")


def ctl(
    *args: str, url: str, token: str | None, home: Path, session: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The console script with only INTERLOPER_URL/INTERLOPER_TOKEN (and INTERLOPER_SESSION) and
    its own config directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOPER_")}
    env |= {"INTERLOPER_URL": url, "XDG_CONFIG_HOME": str(home)}
    if token is not None:
        env["INTERLOPER_TOKEN"] = token
    if session is not None:
        env["INTERLOPER_SESSION"] = session
    return subprocess.run([CTL, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def demo_job(client: httpx.Client, base_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The demo source writing CSV under `base_path`, in a partitioned job: (job, destination)."""
    config = client.post(
        "/api/resources/", json={"kind": "config", "key": "demo_config", "name": "cfg", "data": {"greeting": "hi"}}
    ).json()
    destination = client.post(
        "/api/destinations/", json={"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": base_path}}
    ).json()
    source = client.post(
        "/api/sources/",
        json={
            "key": "demo_source",
            "name": "Demo",
            "resources": {"config": config["id"]},
            "destination_ids": [destination["id"]],
        },
    )
    assert source.status_code == 200, source.text
    job = client.post(
        "/api/jobs/",
        json={"name": "nightly", "cron": "0 4 * * *", "source_ids": [source.json()["id"]], "partitioned": True},
    )
    assert job.status_code == 200, job.text
    return job.json(), destination


class Account(httpx.Client):
    """A signed-in user's client (cookie), with its organisation and an editor API token."""

    token: str
    org: dict[str, Any]


@pytest.fixture
def account(base_url: str) -> Iterator[Account]:
    client = Account(base_url=base_url, timeout=30.0, follow_redirects=True)
    email = f"ctl-{uuid.uuid4().hex[:8]}@example.com"
    assert client.get("/api/auth/dev-login", params={"email": email}, follow_redirects=False).status_code == 302
    org = client.post("/api/organisations", json={"name": "CLI Co"})
    assert org.status_code == 201, org.text
    token = client.post("/api/tokens", json={"name": "cli", "role": "editor"})
    assert token.status_code == 201, token.text
    client.token, client.org = token.json()["token"], org.json()
    try:
        yield client
    finally:
        client.close()


def test_the_cli_runs_a_job_and_follows_it_to_success(account: Account, base_url: str, tmp_path: Path) -> None:
    job, _ = demo_job(account, "out")
    result = ctl(
        "jobs",
        "run",
        job["id"],
        "--partition",
        "2024-05-01",
        "--follow",
        url=base_url,
        token=account.token,
        home=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("run ") and lines[-1].endswith(" success")
    assert any("run_completed" in line for line in lines)
    assert any("[4/4]" in line for line in lines)  # the progress (assets done / total) in plain lines
    assert "\x1b[" not in result.stdout  # piped: no terminal control sequences
    run_id = lines[-1].split()[1]
    assert account.get(f"/api/runs/{run_id}").json()["status"] == "success"


def test_a_failing_run_exits_1_with_its_error_and_retry_runs_it_again(
    account: Account, base_url: str, stack: StackHandle, tmp_path: Path
) -> None:
    root = stack.data_dir / "demo-output" / account.org["id"]
    root.mkdir(parents=True)
    (root / "blocked").write_text("the CSV destination cannot write under a file")
    job, destination = demo_job(account, "blocked")
    failed = ctl(
        "jobs", "run", job["id"], "--partition", "2024-06-01", "-f", url=base_url, token=account.token, home=tmp_path
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    last = failed.stdout.splitlines()[-1]
    assert last.startswith("run ") and " failed: " in last
    run_id = last.split()[1]
    events = account.get(f"/api/runs/{run_id}/events").json()
    first_error = next(e["error"] for e in events if e["error"])
    assert last.endswith(f"failed: {first_error}")
    assert any("dest_write_failed" in line for line in failed.stdout.splitlines())

    fixed = account.put(
        f"/api/destinations/{destination['id']}",
        json={"key": "demo_csv_destination", "name": "CSV", "config": {"base_path": "out"}},
    )
    assert fixed.status_code == 200, fixed.text
    retried = ctl("runs", "retry", run_id, "--follow", url=base_url, token=account.token, home=tmp_path)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    new_id = retried.stdout.splitlines()[-1].split()[1]
    assert new_id != run_id
    new = account.get(f"/api/runs/{new_id}").json()
    assert (new["status"], new["job_id"], new["partition_date"]) == ("success", job["id"], "2024-06-01")
    assert (root / "out" / "demo_source" / "daily_summary" / "date=2024-06-01" / "data.csv").exists()

    listed = ctl("runs", "list", "--job", job["id"], "-o", "json", url=base_url, token=account.token, home=tmp_path)
    assert listed.returncode == 0
    assert sorted(r["id"] for r in json.loads(listed.stdout)) == sorted([run_id, new_id])


def test_output_json_is_valid_json_everywhere(account: Account, base_url: str, tmp_path: Path) -> None:
    job, _ = demo_job(account, "out")
    followed = ctl(
        "jobs",
        "run",
        job["id"],
        "--partition",
        "2024-07-01",
        "-f",
        "-o",
        "json",
        url=base_url,
        token=account.token,
        home=tmp_path,
    )
    assert followed.returncode == 0, followed.stderr
    run = json.loads(followed.stdout)  # the live lines went to stderr
    assert run["status"] == "success" and run["job_id"] == job["id"]
    assert "run_completed" in followed.stderr
    for args, check in (
        (("jobs", "list"), lambda body: [j["id"] for j in body] == [job["id"]]),
        (("jobs", "get", job["id"]), lambda body: body["name"] == "nightly"),
        (("runs", "get", run["id"]), lambda body: body["status"] == "success"),
        (("runs", "events", run["id"]), lambda body: body[-1]["event_type"] == "run_completed"),
        (("orgs",), lambda body: [o["id"] for o in body] == [account.org["id"]]),
        (("sources", "list"), lambda body: [s["key"] for s in body] == ["demo_source"]),
        (("destinations", "list"), lambda body: [d["key"] for d in body] == ["demo_csv_destination"]),
        (("assets", "list"), lambda body: len(body) == 4),
        (("backfills", "list"), lambda body: body == []),
    ):
        result = ctl(*args, "--output", "json", url=base_url, token=account.token, home=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert check(json.loads(result.stdout)), (args, result.stdout)
    table = ctl("runs", "list", url=base_url, token=account.token, home=tmp_path)
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:2] == ["ID", "JOB_ID"]
    assert run["id"] in table.stdout


def test_a_backfill_is_created_and_followed(account: Account, base_url: str, tmp_path: Path) -> None:
    job, _ = demo_job(account, "out")
    result = ctl(
        "backfills", "create", job["id"], "--start", "2024-02-01", "--end", "2024-02-02", "--concurrency", "2", "--follow",
        url=base_url, token=account.token, home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith("backfill ") and last.endswith(" success")
    backfill = account.get(f"/api/backfills/{last.split()[1]}").json()
    assert (backfill["status"], backfill["partitions"]) == ("success", 2)


def test_a_bad_token_is_one_clear_error_line(account: Account, base_url: str, tmp_path: Path) -> None:
    for token in ("ilp_" + "x" * 40, "not-a-token"):
        result = ctl("jobs", "list", url=base_url, token=token, home=tmp_path)
        assert result.returncode == 1
        assert result.stdout == ""
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("interloper-ctl: error: 401: "), result.stderr
    assert (
        "Invalid or expired token" in ctl("runs", "list", url=base_url, token="ilp_" + "x" * 40, home=tmp_path).stderr
    )
    # No token at all: a usage/configuration error (2), saying what to do.
    missing = ctl("jobs", "list", url=base_url, token=None, home=tmp_path)
    assert missing.returncode == 2 and "interloper-ctl login" in missing.stderr
    # A usage error is 2 too (argparse).
    assert ctl("jobs", "run", url=base_url, token=account.token, home=tmp_path).returncode == 2
    # A viewer may not trigger runs: the API's 403 as one line.
    viewer = account.post("/api/tokens", json={"name": "viewer", "role": "viewer"}).json()["token"]
    job, _ = demo_job(account, "out")
    refused = ctl("jobs", "run", job["id"], url=base_url, token=viewer, home=tmp_path)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1 and ": 403: " in refused.stderr


def test_login_stores_the_token_with_mode_600(account: Account, base_url: str, tmp_path: Path) -> None:
    bad = ctl("login", "--url", base_url, "--token", "ilp_" + "y" * 40, url=base_url, token=None, home=tmp_path)
    assert bad.returncode == 1 and not (tmp_path / "interloper" / "ctl.json").exists()
    login = ctl("login", "--url", base_url, "--token", account.token, url=base_url, token=None, home=tmp_path)
    assert login.returncode == 0, login.stderr
    stored = tmp_path / "interloper" / "ctl.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert json.loads(stored.read_text()) == {"url": base_url, "token": account.token}
    whoami = ctl("whoami", "-o", "json", url=base_url, token=None, home=tmp_path)
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["organisation"]["id"] == account.org["id"]
    stored.chmod(0o644)  # readable by others: refused, not used
    refused = ctl("whoami", url=base_url, token=None, home=tmp_path)
    assert refused.returncode == 2 and "chmod 600" in refused.stderr


def test_a_followed_run_shows_its_log_lines_and_runs_logs_reads_them(
    account: Account, base_url: str, tmp_path: Path
) -> None:
    destination = account.post("/api/destinations/", json={"key": "demo_csv_destination", "name": "CSV"}).json()
    source = account.post(
        "/api/sources/",
        json={
            "key": "demo_live",
            "name": "Live",
            "config": {"seconds": 1, "steps": 2},
            "destination_ids": [destination["id"]],
        },
    )
    assert source.status_code == 200, source.text
    job = account.post(
        "/api/jobs/", json={"name": "live", "cron": "0 4 * * *", "source_ids": [source.json()["id"]]}
    ).json()
    followed = ctl("jobs", "run", job["id"], "--follow", url=base_url, token=account.token, home=tmp_path)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    # The asset's logging, live (stream and asset shown), besides the run's events.
    assert any(
        "[logging] progress" in x and x.endswith("Progress: step 2/2 done") for x in followed.stdout.splitlines()
    )
    run_id = followed.stdout.splitlines()[-1].split()[1]

    logs = ctl("runs", "logs", run_id, "-o", "json", url=base_url, token=account.token, home=tmp_path)
    assert logs.returncode == 0, logs.stderr
    lines = json.loads(logs.stdout)
    assert [x["message"] for x in lines if x["stream"] == "logging"][-1].endswith("Progress: step 2/2 done")
    assert [x["seq"] for x in lines] == sorted(x["seq"] for x in lines)
    table = ctl("runs", "logs", run_id, url=base_url, token=account.token, home=tmp_path)
    assert table.returncode == 0 and "Progress: step 1/2 done" in table.stdout
    # Another organisation's run (or none): the API's 404 as one line.
    missing = ctl("runs", "logs", str(uuid.uuid4()), url=base_url, token=account.token, home=tmp_path)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and ": 404: Run " in missing.stderr


def test_tokens_are_managed_with_a_session_and_refused_to_a_token(
    account: Account, base_url: str, tmp_path: Path
) -> None:
    session = account.cookies["session_token"]
    created = ctl(
        "tokens", "create", "--name", "from-cli", "--role", "viewer", "-o", "json",
        url=base_url, token=None, session=session, home=tmp_path,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)
    assert token["token"].startswith("ilp_") and token["role"] == "viewer"
    # The new token works (a viewer: it can read runs).
    assert ctl("runs", "list", url=base_url, token=token["token"], home=tmp_path).returncode == 0
    listed = ctl("tokens", "list", "-o", "json", url=base_url, token=None, session=session, home=tmp_path)
    assert token["id"] in [t["id"] for t in json.loads(listed.stdout)]
    # A token may not manage tokens: the API's 403, one line.
    refused = ctl("tokens", "list", url=base_url, token=account.token, home=tmp_path)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and ": 403: " in refused.stderr
    revoked = ctl("tokens", "revoke", token["id"], url=base_url, token=None, session=session, home=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    after = ctl("runs", "list", url=base_url, token=token["token"], home=tmp_path)
    assert after.returncode == 1 and "401" in after.stderr


def test_ctrl_c_stops_following_but_not_the_run(account: Account, base_url: str, tmp_path: Path) -> None:
    destination = account.post("/api/destinations/", json={"key": "demo_csv_destination", "name": "CSV"}).json()
    source = account.post(
        "/api/sources/",
        json={
            "key": "demo_live",
            "name": "Slow",
            "config": {"seconds": 8, "steps": 8},
            "destination_ids": [destination["id"]],
        },
    ).json()
    job = account.post("/api/jobs/", json={"name": "slow", "cron": "0 4 * * *", "source_ids": [source["id"]]}).json()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOPER_")}
    env |= {"INTERLOPER_URL": base_url, "INTERLOPER_TOKEN": account.token, "XDG_CONFIG_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [CTL, "jobs", "run", job["id"], "--follow"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # until the asset is at work
            if "asset_exec_started" in line:
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "stopped following" in err and "goes on" in err
    runs = account.get("/api/runs", params={"job_id": job["id"]}).json()
    assert len(runs) == 1 and runs[0]["status"] in ("running", "success")  # not canceled


def test_following_survives_a_gateway_restart_resuming_with_since(
    account: Account, base_url: str, stack: StackHandle, tmp_path: Path
) -> None:
    """The gateway is killed while the CLI follows a run: it reconnects through Traefik with
    `since=` and shows the rest of the run, each event once, and exits 0."""
    destination = account.post("/api/destinations/", json={"key": "demo_csv_destination", "name": "CSV"}).json()
    source = account.post(
        "/api/sources/",
        json={
            "key": "demo_live",
            "name": "Slow",
            "config": {"seconds": 6, "steps": 6},
            "destination_ids": [destination["id"]],
        },
    ).json()
    job = account.post("/api/jobs/", json={"name": "slow", "cron": "0 4 * * *", "source_ids": [source["id"]]}).json()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOPER_")}
    env |= {"INTERLOPER_URL": base_url, "INTERLOPER_TOKEN": account.token, "XDG_CONFIG_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [CTL, "jobs", "run", job["id"], "--follow"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if "asset_exec_started" in line:
                break
        old = stack.kill_component("gateway")
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stack.wait_component_ready("gateway", not_pid=old)
    lines = [*seen, *out.splitlines(keepends=True)]
    text = "".join(lines)
    assert process.returncode == 0, text + err
    assert re.search(r"reconnecting \(resuming after message \d+\)", text), text
    assert text.count("run_completed") == 1 and text.count("asset_exec_started") == 1
    assert text.count("Progress: step 6/6 done") >= 1 and lines[-1].endswith(" success\n")
    for step in range(1, 7):  # every progress event of the run, once (the log lines say it too)
        assert sum(f"log                  progress  Progress: step {step}/6 done" in x for x in lines) == 1, text
