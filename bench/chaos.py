"""`make chaos`: fault injection into a running local stack (issue 22).

Under a steady load (run triggers, invitations, reads, a live /api/ws reader that resumes with
`since=`), every component is killed with SIGKILL in turn (the launcher restarts it). Then:
no run lost, stuck or misattributed (a run failed as lost must name a worker that was killed),
every run's frames delivered (its INSERT and its final status), every invitation e-mailed
exactly once, no 5xx but JSON 503 with Retry-After (a request in flight at the moment its
process died may get a 502: it may have been processed; so may one sent within KILL_GRACE after
the kill, on a kept-alive connection Traefik has not yet seen closed), every component back. One summary
line; exit status 1 on any finding.

    python -m bench.chaos                      # own stack in a temp dir, every component
    python -m bench.chaos --components gateway,nats --settle 2
    python -m bench.chaos --attach <data dir>  # an already running stack (its stack.json)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from .scenario import live_job

COMPONENTS = (
    "pipelines-worker",
    "pipelines",
    "identity",
    "gateway",
    "notifications",
    "pipelines-scheduler",
    "nats",
    "postgres",
)
FINISHED = ("success", "failed", "canceled")
LOST = re.compile(r"Run lost: no heartbeat from worker [^:\s]+:(\d+):")


@dataclass
class Answer:
    method: str
    path: str
    started: float
    ended: float
    status: int  # 0: no answer (connection error)
    content_type: str = ""
    retry_after: str | None = None
    body: str = ""


@dataclass
class Kill:
    component: str
    pid: int
    at: float
    back_after: float | None = None


@dataclass
class State:
    base_url: str
    data_dir: Path
    answers: list[Answer] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    triggered_at: dict[str, float] = field(default_factory=dict)  # run id -> when its POST was answered
    invited: list[str] = field(default_factory=list)
    frames: dict[str, list[str]] = field(default_factory=dict)  # run id -> events/statuses seen
    frame_ids: list[int] = field(default_factory=list)
    reconnects: int = 0
    kills: list[Kill] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ws_open: asyncio.Event = field(default_factory=asyncio.Event)  # the reader's first socket is open
    stop_ws: bool = False
    replicated: bool = False  # every killed component has another replica: a 503 is a finding too

    def stack_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.data_dir / "stack.json").read_text(encoding="utf-8"))
        return data


async def call(state: State, client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = await client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        state.answers.append(Answer(method, path, started, time.monotonic(), 0, body=type(exc).__name__))
        return None
    state.answers.append(
        Answer(
            method,
            path,
            started,
            time.monotonic(),
            response.status_code,
            response.headers.get("content-type", ""),
            response.headers.get("retry-after"),
            response.text[:200] if response.status_code >= 500 else "",
        )
    )
    return response


async def trigger_load(state: State, client: httpx.AsyncClient, job_id: str, rate: float) -> None:
    while not state.stop.is_set():
        response = await call(state, client, "POST", f"/api/jobs/{job_id}/run")
        if response is not None and response.status_code == 200:
            run_id = str(response.json()["run_id"])
            state.runs.append(run_id)
            state.triggered_at[run_id] = time.monotonic()
        await asyncio.sleep(1 / rate)


async def invite_load(state: State, client: httpx.AsyncClient, rate: float) -> None:
    while not state.stop.is_set():
        email = f"inv-{uuid.uuid4().hex[:10]}@chaos.example"
        response = await call(
            state, client, "POST", "/api/organisations/invite", json={"email": email, "role": "viewer"}
        )
        if response is not None and response.status_code == 201:
            state.invited.append(email)
        await asyncio.sleep(1 / rate)


async def read_load(state: State, client: httpx.AsyncClient, rate: float) -> None:
    while not state.stop.is_set():
        await call(state, client, "GET", "/api/runs/", params={"limit": 5})
        await asyncio.sleep(1 / rate)


async def ws_reader(state: State, cookie: str) -> None:
    """Follows /api/ws with ids; on any disconnect reconnects with since=<last id>."""
    url = state.base_url.replace("http://", "ws://") + "/api/ws"
    last = 0
    while True:
        query = f"?since={last}" if last else "?resume=1"
        try:
            async with websockets.connect(url + query, additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
                state.ws_open.set()
                async for raw in ws:
                    message = json.loads(raw)
                    last = max(last, int(message["id"]))
                    state.frame_ids.append(int(message["id"]))
                    if message.get("table") == "runs":
                        record = message["record"]
                        state.frames.setdefault(str(record["id"]), []).append(f"{message['event']}:{record['status']}")
        except (OSError, websockets.exceptions.WebSocketException, TimeoutError):
            pass
        if state.stop.is_set() and state.stop_ws:
            return
        state.reconnects += 1
        await asyncio.sleep(0.5)


def wait_ready(state: State, name: str, old_pid: int, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(OSError, ValueError, KeyError):
            comp = state.stack_json()["components"][name]
            if comp.get("state") == "ready" and comp.get("pid") and comp["pid"] != old_pid:
                return time.monotonic() - started
        time.sleep(0.1)
    return None


async def kill_all(state: State, components: list[str], settle: float, within: float) -> None:
    for name in components:
        await asyncio.sleep(settle)
        comp = state.stack_json()["components"].get(name)
        if not comp or not comp.get("pid"):
            print(f"chaos: {name} is not part of this stack, skipped", file=sys.stderr)
            continue
        pid = int(comp["pid"])
        kill = Kill(name, pid, time.monotonic())
        os.kill(pid, signal.SIGKILL)
        state.kills.append(kill)
        kill.back_after = await asyncio.to_thread(wait_ready, state, name, pid, within)
        print(f"chaos: killed {name} (pid {pid}); back after {kill.back_after}", file=sys.stderr)
    await asyncio.sleep(settle)


def mails_to(mail_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in mail_dir.glob("*.eml"):
        match = re.search(r"^To: (.+)$", path.read_text(errors="replace"), re.M)
        if match:
            counts[match.group(1).strip()] = counts.get(match.group(1).strip(), 0) + 1
    return counts


async def drain(state: State, client: httpx.AsyncClient, within: float) -> dict[str, dict[str, Any]]:
    """Every triggered run's final state (waits for unfinished ones up to `within` seconds)."""
    final: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + within
    pending = list(state.runs)
    while pending and time.monotonic() < deadline:
        still = []
        for run_id in pending:
            response = await client.get(f"/api/runs/{run_id}")
            if response.status_code == 200 and response.json()["status"] in FINISHED:
                final[run_id] = response.json()
            else:
                still.append(run_id)
                final[run_id] = (
                    response.json() if response.status_code == 200 else {"status": f"http {response.status_code}"}
                )
        pending = still
        if pending:
            await asyncio.sleep(1)
    for run_id, run in final.items():
        if run.get("status") == "failed":
            events = (await client.get(f"/api/runs/{run_id}/events")).json()
            run["reasons"] = [e.get("error") for e in events if e["event_type"] == "run_failed"]
    return final


async def wait_mails(state: State, within: float) -> dict[str, int]:
    deadline = time.monotonic() + within
    counts = mails_to(state.data_dir / "mail")
    while time.monotonic() < deadline and any(counts.get(e, 0) < 1 for e in state.invited):
        await asyncio.sleep(1)
        counts = mails_to(state.data_dir / "mail")
    await asyncio.sleep(2)  # a duplicate would come right after
    return mails_to(state.data_dir / "mail")


# A kill is stamped just before the signal; the dead process's connections close a moment later,
# and Traefik may write a request onto one it has not yet seen closed (then it cannot know
# whether the request was processed, and answers 502 rather than retrying a POST).
KILL_GRACE = 0.25


def in_flight_at_a_kill(answer: Answer, kills: list[Kill]) -> bool:
    return any(answer.started - KILL_GRACE <= k.at <= answer.ended for k in kills)


def near_a_kill(state: State, run_id: str) -> str:
    """Where a run's trigger fell among the kills, to tell which fault a finding follows."""
    at = state.triggered_at.get(run_id)
    before = [k for k in state.kills if k.at <= at] if at is not None else []
    if at is None or not before:
        return "triggered before any kill"
    kill = before[-1]
    return f"triggered {at - kill.at:.1f} s after killing {kill.component}"


def check(state: State, final: dict[str, dict[str, Any]], mails: dict[str, int]) -> tuple[list[str], dict[str, Any]]:
    findings: list[str] = []
    killed_worker_pids = {k.pid for k in state.kills if k.component == "pipelines-worker"}
    statuses: dict[str, int] = {}
    reaped = 0
    for run_id, run in final.items():
        status = str(run.get("status"))
        statuses[status] = statuses.get(status, 0) + 1
        if status not in FINISHED:
            findings.append(f"run {run_id} stuck or lost: {status}")
        elif status == "failed":
            reasons = run.get("reasons") or []
            match = LOST.match(reasons[0] or "") if reasons else None
            if match and int(match.group(1)) in killed_worker_pids:
                reaped += 1
            else:
                findings.append(f"run {run_id} failed: {reasons}")
        frames = state.frames.get(run_id, [])
        if not any(f.startswith("INSERT") for f in frames):
            findings.append(f"run {run_id}: no INSERT frame ({frames}; {near_a_kill(state, run_id)})")
        if status in FINISHED and not any(f.endswith(":" + status) for f in frames):
            where = near_a_kill(state, run_id)
            findings.append(f"run {run_id}: final status {status} never framed ({frames}; {where})")
    if len(state.frame_ids) != len(set(state.frame_ids)):
        findings.append(f"{len(state.frame_ids) - len(set(state.frame_ids))} frames delivered twice")
    for email in state.invited:
        if mails.get(email, 0) != 1:
            findings.append(f"invitation to {email}: {mails.get(email, 0)} e-mails")
    json_503 = in_flight = 0
    for a in state.answers:
        if a.status == 503 and a.content_type.startswith("application/json") and a.retry_after:
            json_503 += 1
            if state.replicated and not in_flight_at_a_kill(a, state.kills):
                findings.append(f"{a.method} {a.path}: 503 although another replica was up ({a.body!r})")
        elif (a.status >= 500 or a.status == 0) and in_flight_at_a_kill(a, state.kills):
            in_flight += 1
        elif a.status >= 500 or a.status == 0:
            findings.append(f"{a.method} {a.path}: {a.status} {a.content_type} {a.body!r}")
    components = state.stack_json()["components"]
    for kill in state.kills:
        if kill.back_after is None or components[kill.component].get("state") != "ready":
            findings.append(f"{kill.component} did not come back")
    figures = {
        "runs": len(final),
        "run_statuses": statuses,
        "reaped": reaped,
        "invitations": len(state.invited),
        "mails": sum(mails.get(e, 0) for e in state.invited),
        "frames": len(state.frame_ids),
        "ws_reconnects": state.reconnects,
        "requests": len(state.answers),
        "json_503": json_503,
        "in_flight_at_kill": in_flight,
        "recovery_s": {k.component: None if k.back_after is None else round(k.back_after, 1) for k in state.kills},
    }
    return findings, figures


async def chaos(base_url: str, data_dir: Path, args: argparse.Namespace) -> int:
    state = State(base_url, data_dir, replicated=args.replicated)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        job_id = await live_job(client, "chaos", seconds=0.3)
        cookie = f"session_token={client.cookies['session_token']}"
        # The reader first: a run triggered before its socket is open has its INSERT frame
        # published to nobody (seen on a loaded CI machine as a run "without an INSERT frame").
        reader = asyncio.create_task(ws_reader(state, cookie))
        await asyncio.wait_for(state.ws_open.wait(), 60)
        tasks = [
            asyncio.create_task(trigger_load(state, client, job_id, args.run_rate)),
            asyncio.create_task(invite_load(state, client, args.invite_rate)),
            asyncio.create_task(read_load(state, client, args.read_rate)),
        ]
        try:
            await kill_all(state, args.components, args.settle, args.ready_timeout)
        finally:
            state.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        final = await drain(state, client, args.drain_timeout)
        mails = await wait_mails(state, args.drain_timeout)
        await asyncio.sleep(2)  # the last frames
        state.stop_ws = True
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    findings, figures = check(state, final, mails)
    for finding in findings[:50]:
        print(f"chaos: FINDING {finding}", file=sys.stderr)
    verdict = "OK" if not findings else f"FAILED ({len(findings)} findings)"
    print(f"CHAOS {verdict} " + json.dumps(figures, separators=(",", ":")))
    return 0 if not findings else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Kill every component in turn under load; check the end state.")
    parser.add_argument("--components", default=",".join(COMPONENTS), help="comma-separated, killed in this order")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds of load before each kill and after the last")
    parser.add_argument("--run-rate", type=float, default=4.0, help="run triggers per second")
    parser.add_argument("--invite-rate", type=float, default=0.5, help="invitations per second")
    parser.add_argument("--read-rate", type=float, default=5.0, help="GET /api/runs per second")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds for a killed component to be back")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds for runs and e-mails to settle")
    parser.add_argument(
        "--replicated",
        action="store_true",
        help="every killed component has another replica (--replicas): a JSON 503 is a finding too",
    )
    parser.add_argument("--replicas", default="", help="start the stack with these replicas (NAME=N,...)")
    parser.add_argument("--attach", type=Path, help="data dir of a running stack (default: start one in a temp dir)")
    args = parser.parse_args(argv)
    args.components = [c for c in args.components.split(",") if c]
    if args.attach:
        info = json.loads((args.attach / "stack.json").read_text(encoding="utf-8"))
        return asyncio.run(chaos(info["public_url"], args.attach, args))

    from icp_pipelines.demo import CATALOG_PATHS
    from icp_stack.ports import free_port
    from icp_stack.pytest_plugin import start_stack, stop_stack_process

    base = Path(tempfile.mkdtemp(prefix="interloper-chaos-"))
    env = {**os.environ, "INTERLOPER_CATALOG": json.dumps(CATALOG_PATHS)}
    env.setdefault("INTERLOPER_REAPER_HEARTBEAT_TIMEOUT", "10")
    env.setdefault("INTERLOPER_REAPER_POLL_INTERVAL", "1")
    stack_args = ["--replicas", args.replicas, "--ready-timeout", "240"] if args.replicas else []
    handle = start_stack(base / "data", free_port(), base / "stack.log", stack_args, env=env)
    code = 1
    try:
        code = asyncio.run(chaos(handle.base_url, handle.data_dir, args))
    finally:
        stop_stack_process(handle.process, check=False)
    if code == 0:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"chaos: stack log and data kept in {base}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
