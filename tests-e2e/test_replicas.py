"""Correct under replicas (issue 20.2), end to end on `replicated_stack` (two processes of every
service: gateways, pipelines APIs behind the stack's internal balancer, workers, schedulers,
notifications consumers) plus a third worker started here like the stack's own (replicas.py).

* every run is executed exactly once by three workers (runs triggered at once and a backfill):
  one claim per run row, one run process's output and events per run;
* a cron tick creates one run with two schedulers, and the leader's SIGKILL hands the lead over
  (measured, printed, asserted against a generous bound);
* events of one organisation keep their commit order across the outbox relays of all the
  pipelines processes, through a SIGKILL of the relay leader: the REALTIME and PIPELINES streams
  hold exactly the writes' frames in commit order, and every socket on either gateway gets
  every frame of the stream in that order;
* an invitation e-mail is sent exactly once with two notifications consumers.

The session cache's invalidation across two gateways (logout, member removal, role change) is
tests-e2e/test_auth_cache.py. Run with `-s` to see the measured figures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any

import asyncpg
import httpx
import nats
import pytest
import websockets
from nats.js.api import DeliverPolicy
from replicas import Replica, counter, lock_holder, process_with_local_port, start_replica

from icp_common.contracts import RUN_QUEUED
from icp_pipelines.scheduler.leader import LOCK_KEY as SCHEDULER_LOCK
from icp_stack.pytest_plugin import StackHandle

PIPELINES_DB = "interloper_pipelines"
# icp_common.outbox.OutboxRelay: the session lock of the relay that answers NOTIFY (the leader).
RELAY_LEADER_LOCK = zlib.crc32(b"outbox-leader:pipelines")
FAILOVER_BOUND = 15.0  # seconds: "taken over", generous on a loaded machine (the figure is printed)
FINISHED = ("success", "failed", "canceled")
STATUS_RANK = {"pending": 0, "queued": 1, "dispatched": 2, "running": 3, "success": 4, "failed": 4, "canceled": 4}


@dataclass
class Cluster:
    """The replicated stack's processes, plus the replicas started here."""

    stack: StackHandle
    extra: dict[str, list[Replica]] = field(default_factory=dict)

    def urls(self, component: str) -> list[str]:
        """The direct URL of every process of `component`."""
        own = [str(self.stack.component(name)["url"]) for name in self.stack.replicas(component)]
        return [*own, *(r.url for r in self.extra.get(component, []))]

    def pids(self, component: str) -> list[int]:
        """The pid of every process of `component` (one being restarted by the launcher has none)."""
        own = [self.stack.component(name).get("pid") for name in self.stack.replicas(component)]
        return [*(int(pid) for pid in own if pid), *(r.pid for r in self.extra.get(component, []))]

    @property
    def gateways(self) -> list[str]:
        """Each gateway replica, directly (Traefik would pick one for us)."""
        return self.urls("gateway")

    def kill(self, pid: int) -> str:
        """SIGKILL the process `pid` (the launcher restarts its own); returns its component name."""
        for component, replicas in self.extra.items():
            for replica in replicas:
                if replica.pid == pid:
                    replica.kill()
                    return f"{component} (started here)"
        for name in self.stack.reload_info()["components"]:
            if int(self.stack.component(name).get("pid") or 0) == pid:
                self.stack.kill_component(name)
                return name
        raise AssertionError(f"pid {pid} is no process of the stack")

    def recover(self) -> None:
        """Every process of the stack ready again (the next tests use it)."""
        for component in ("pipelines", "pipelines-worker", "pipelines-scheduler", "notifications"):
            for name in self.stack.replicas(component):
                self.stack.wait_component_ready(name, timeout=90)


@pytest.fixture(scope="module")
def cluster(replicated_stack: StackHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`replicated_stack` (two processes of every service) and a third worker."""
    cluster = Cluster(replicated_stack)
    worker = start_replica(replicated_stack, "pipelines-worker", tmp_path_factory.mktemp("replicas"))
    cluster.extra["pipelines-worker"] = [worker]
    try:
        counts = {
            c: len(cluster.urls(c))
            for c in ("gateway", "pipelines", "pipelines-worker", "pipelines-scheduler", "notifications")
        }
        assert counts == {
            "gateway": 2,
            "pipelines": 2,
            "pipelines-worker": 3,
            "pipelines-scheduler": 2,
            "notifications": 2,
        }
        yield cluster
    finally:
        worker.stop()
    cluster.recover()


# ------------------------------------------------------------------------------------ helpers


@dataclass
class Tenant:
    """A signed-in admin of a fresh organisation, with a client per gateway (same session)."""

    org_id: str
    email: str
    clients: list[httpx.AsyncClient]

    async def call(self, gateway: int, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.clients[gateway % len(self.clients)].request(method, path, **kwargs)

    async def write(self, gateway: int, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A write through `gateway`, or the other one while a killed process is replaced (an
        Idempotency-Key makes the retry safe: it is answered once, however often it is sent)."""
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        deadline = time.monotonic() + 90
        attempt = 0
        while True:
            try:
                response = await self.call(gateway + attempt, method, path, headers=headers, **kwargs)
                if response.status_code < 500:
                    return response
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{method} {path}: no answer through either gateway"
            attempt += 1
            await asyncio.sleep(0.2)


@pytest.fixture
async def tenant(cluster: Cluster) -> AsyncIterator[Tenant]:
    email = f"replicas-{uuid.uuid4().hex[:8]}@e2e.example"
    async with httpx.AsyncClient(base_url=cluster.gateways[0], timeout=30.0) as first:
        response = await first.get("/api/auth/dev-login", params={"email": email})
        assert response.status_code == 302, response.text
        token = response.cookies["session_token"]
    headers = {"Cookie": f"session_token={token}"}
    clients = [httpx.AsyncClient(base_url=url, timeout=30.0, headers=headers) for url in cluster.gateways]
    try:
        org = await clients[0].post("/api/organisations", json={"name": "Replicas"})
        assert org.status_code == 201, org.text
        yield Tenant(org.json()["id"], email, clients)
    finally:
        for client in clients:
            await client.aclose()


async def live_job(tenant: Tenant, seconds: float, steps: int) -> str:
    """A job of one `demo_live` source: its run process prints `working: step k/n` per step."""
    source = await tenant.call(
        0,
        "POST",
        "/api/sources/",
        json={"key": "demo_live", "name": "Live", "config": {"seconds": seconds, "steps": steps}},
    )
    assert source.status_code == 200, source.text
    job = await tenant.call(
        1, "POST", "/api/jobs/", json={"name": "live", "cron": "0 4 * * *", "source_ids": [source.json()["id"]]}
    )
    assert job.status_code == 200, job.text
    return str(job.json()["id"])


async def query(stack: StackHandle, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(stack.postgres_dsn("postgres", PIPELINES_DB))
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def until(probe: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {value!r}"
        await asyncio.sleep(0.2)


# ------------------------------------------------------------------------------- 1. workers


async def test_every_run_is_executed_once_by_three_workers(cluster: Cluster, tenant: Tenant) -> None:
    workers = cluster.urls("pipelines-worker")
    assert len(workers) == 3
    job_id = await live_job(tenant, 0.3, 2)
    claimed_before = [counter(url, "icp_pipelines_runs_claimed_total") for url in workers]

    triggers = await asyncio.gather(*(tenant.write(i, "POST", f"/api/jobs/{job_id}/run") for i in range(24)))
    assert all(r.status_code == 200 for r in triggers), [r.text for r in triggers]
    backfill = await tenant.write(
        1,
        "POST",
        f"/api/jobs/{job_id}/backfill",
        json={"start_date": "2024-01-01", "end_date": "2024-01-06", "concurrency": 3},
    )
    assert backfill.status_code == 200, backfill.text
    org = uuid.UUID(tenant.org_id)

    async def all_finished() -> list[asyncpg.Record] | None:
        rows = await query(cluster.stack, "SELECT id, status, attempts, worker_id FROM runs WHERE org_id = $1", org)
        return rows if len(rows) == 30 and all(r["status"] in FINISHED for r in rows) else None

    runs = await until(all_finished, 120, "30 runs finished")
    assert {r["status"] for r in runs} == {"success"}
    assert [r["attempts"] for r in runs] == [1] * 30  # each run row claimed once (a claim counts)
    # The run process's own output, once per run: each step printed once (a second execution of
    # a run would print its steps again into the run's logs), and its events once.
    logs = await query(
        cluster.stack, "SELECT run_id, message FROM run_logs WHERE org_id = $1 AND message LIKE 'working:%'", org
    )
    printed = Counter((r["run_id"], r["message"]) for r in logs)
    assert printed == Counter({(r["id"], f"working: step {k}/2"): 1 for r in runs for k in (1, 2)})
    events = await query(cluster.stack, "SELECT run_id, event_type, message FROM events WHERE org_id = $1", org)
    per_run = Counter((e["run_id"], e["event_type"], e["message"]) for e in events)
    assert set(per_run.values()) == {1}, [k for k, n in per_run.items() if n > 1]
    kinds = {run_id: sorted((t, m or "") for (r, t, m) in per_run if r == run_id) for run_id in {r["id"] for r in runs}}
    assert len({tuple(v) for v in kinds.values()}) == 1  # every run the same events, none twice

    claimed = [
        counter(url, "icp_pipelines_runs_claimed_total") - before
        for url, before in zip(workers, claimed_before, strict=True)
    ]
    by_worker = Counter(r["worker_id"] for r in runs)
    print(f"\nruns claimed per worker process: {claimed}; per worker id: {sorted(by_worker.values())}")
    assert sum(claimed) == 30  # every claim of the three workers was one of these 30 runs
    assert len(by_worker) >= 2  # the work was shared, so the workers did compete for it


# ----------------------------------------------------------------------------- 2. schedulers


async def job_runs(stack: StackHandle, job_ids: list[str]) -> dict[str, int]:
    rows = await query(
        stack,
        "SELECT j.id::text AS id, count(r.id) AS n FROM jobs j LEFT JOIN runs r ON r.job_id = j.id"
        " WHERE j.id = ANY($1::uuid[]) GROUP BY j.id",
        job_ids,
    )
    return {r["id"]: int(r["n"]) for r in rows}


async def fire_once(stack: StackHandle, job_ids: list[str], expected: int) -> None:
    """Make the jobs' next tick now (crons have minute resolution) and wait for its runs; then
    every job has `expected` runs and its next tick tomorrow (nothing else is due)."""
    await query(stack, "UPDATE jobs SET next_run_at = now() WHERE id = ANY($1::uuid[])", job_ids)

    async def fired() -> dict[str, int] | None:
        counts = await job_runs(stack, job_ids)
        return counts if all(n >= expected for n in counts.values()) else None

    await until(fired, 60, f"cron tick {expected}")
    rows = await query(
        stack, "SELECT next_run_at > now() + interval '1 minute' AS later FROM jobs WHERE id = ANY($1::uuid[])", job_ids
    )
    assert [r["later"] for r in rows] == [True] * len(job_ids)  # the tick is done: no second one due
    assert await job_runs(stack, job_ids) == dict.fromkeys(job_ids, expected)


PIPELINES_PROCESSES = ("pipelines", "pipelines-worker", "pipelines-scheduler")


async def kill_leader(cluster: Cluster, key: int, components: tuple[str, ...]) -> tuple[int, str, float, int | None]:
    """SIGKILL the process holding advisory lock `key` (one of `components`' processes) and wait
    until another connection holds it: (killed pid, its component, seconds from the kill to the
    lock held again, the new holder's pid if known)."""
    port = await until(lambda: lock_holder(cluster.stack, PIPELINES_DB, key), 30, "a leader")
    leader = process_with_local_port(port, [p for c in components for p in cluster.pids(c)])
    assert leader is not None, f"no process of {components} holds lock {key}"
    killed_at = time.monotonic()
    component = cluster.kill(leader)

    async def taken_over() -> int | None:
        holder = await lock_holder(cluster.stack, PIPELINES_DB, key)
        return holder if holder not in (None, port) else None

    successor = await until(taken_over, 60, "a new leader")
    elapsed = time.monotonic() - killed_at
    return (
        leader,
        component,
        elapsed,
        process_with_local_port(successor, [p for c in components for p in cluster.pids(c)]),
    )


async def test_a_cron_tick_creates_one_run_and_a_killed_leader_is_replaced(cluster: Cluster, tenant: Tenant) -> None:
    stack = cluster.stack
    schedulers = cluster.pids("pipelines-scheduler")
    assert len(schedulers) == 2
    jobs = []
    for i in range(4):  # no sources: each run succeeds at once
        job = await tenant.call(i, "POST", "/api/jobs/", json={"name": f"tick-{i}", "cron": "0 4 * * *"})
        assert job.status_code == 200, job.text
        jobs.append(str(job.json()["id"]))
    fired_before = sum(
        counter(url, "icp_pipelines_cron_ticks_total", outcome="fired") for url in cluster.urls("pipelines-scheduler")
    )
    await fire_once(stack, jobs, 1)
    fired = sum(
        counter(url, "icp_pipelines_cron_ticks_total", outcome="fired") for url in cluster.urls("pipelines-scheduler")
    )
    assert fired - fired_before == 4  # one tick fired per job, by one scheduler

    leader, component, failover, successor = await kill_leader(cluster, SCHEDULER_LOCK, ("pipelines-scheduler",))
    print(f"\nscheduler leader {leader} ({component}) SIGKILLed: pid {successor} leads after {failover:.2f} s")
    assert failover < FAILOVER_BOUND
    await fire_once(stack, jobs, 2)  # the new leader fires the next tick, once
    cluster.recover()


# ------------------------------------------------------------------- 3. order across relays


@dataclass
class Socket:
    gateway: int
    resume: bool
    frames: list[dict[str, Any]] = field(default_factory=list)


async def follow(url: str, headers: dict[str, str], socket: Socket, ready: asyncio.Event) -> None:
    query_string = "?resume=1&subscribe=run_logs" if socket.resume else ""
    async with websockets.connect(
        url.replace("http://", "ws://") + "/api/ws" + query_string, additional_headers=headers
    ) as ws:
        ready.set()
        async for message in ws:
            socket.frames.append(json.loads(message))


async def stream_messages(stack: StackHandle, stream: str, subject: str) -> list[tuple[int, bytes]]:
    """Every message of `stream` on `subject` (wildcards allowed), as (stream sequence, data)."""
    nc = await nats.connect(stack.nats_url(), connect_timeout=5)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        found: list[tuple[int, bytes]] = []
        subscription = await js.subscribe(
            subject, stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        try:
            while True:
                try:
                    message = await subscription.next_msg(timeout=5)
                except nats.errors.TimeoutError:
                    break
                found.append((message.metadata.sequence.stream, message.data))
                if message.metadata.sequence.stream >= info.state.last_seq or message.metadata.num_pending == 0:
                    break
        finally:
            await subscription.unsubscribe()
        return found
    finally:
        await nc.close()


async def test_one_organisations_frames_keep_commit_order_across_relays_and_reach_every_socket(
    cluster: Cluster, tenant: Tenant
) -> None:
    """Sequential writes alternate between the two gateways, which spread them over the two
    pipelines APIs (each answer follows its commit, so their order is the commit order): trigger
    run i through one, cancel run i-1 through the other, with three workers claiming, starting and logging the runs meanwhile.
    Halfway, the process leading the outbox relays is SIGKILLed. Two sockets on each gateway
    follow: one with every frame (`resume=1`: stream sequences; `subscribe=run_logs`), one with
    the web UI's defaults."""
    stack = cluster.stack
    job_id = await live_job(tenant, 30, 2)  # runs stay in flight until canceled
    headers = {"Cookie": tenant.clients[0].headers["Cookie"]}
    sockets = [Socket(g, resume) for g in (0, 1) for resume in (True, False)]
    readiness = [asyncio.Event() for _ in sockets]
    # The workers' wake-ups are core NATS (no stream stores them): heard as a worker hears them.
    listener = await nats.connect(stack.nats_url(), connect_timeout=5)
    wakeups = await listener.subscribe(RUN_QUEUED)
    followers = [
        asyncio.create_task(follow(cluster.gateways[s.gateway], headers, s, ready))
        for s, ready in zip(sockets, readiness, strict=True)
    ]
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(ready.wait() for ready in readiness))
        await asyncio.sleep(0.5)  # each gateway's relay delivers new messages only

        expected: list[tuple[str, str]] = []  # (run id, status) of each write, in commit order
        runs: list[str] = []
        handover = None
        for i in range(16):
            if i == 8:
                leader, component, handover, successor = await kill_leader(
                    cluster, RELAY_LEADER_LOCK, PIPELINES_PROCESSES
                )
                print(f"\nrelay leader {leader} ({component}) SIGKILLed: pid {successor} leads after {handover:.2f} s")
            triggered = await tenant.write(i, "POST", f"/api/jobs/{job_id}/run")
            assert triggered.status_code == 200, triggered.text
            runs.append(str(triggered.json()["run_id"]))
            expected.append((runs[-1], "queued"))
            if i > 0:
                canceled = await tenant.write(i + 1, "POST", f"/api/runs/{runs[-2]}/cancel")
                # 409 "already canceled": a retried cancel whose first attempt was done
                assert canceled.status_code == 200 or "already canceled" in canceled.text, canceled.text
                expected.append((runs[-2], "canceled"))
        canceled = await tenant.write(0, "POST", f"/api/runs/{runs[-1]}/cancel")
        assert canceled.status_code == 200, canceled.text
        expected.append((runs[-1], "canceled"))
        assert handover is not None and handover < FAILOVER_BOUND

        def terminal(socket: Socket) -> set[str]:
            return {
                f["record"]["id"] for f in socket.frames if f["table"] == "runs" and f["record"]["status"] in FINISHED
            }

        async def delivered() -> bool:
            return all(terminal(s) >= set(runs) for s in sockets)

        await until(delivered, 60, "every run's end on every socket")

        async def caught_up() -> list[tuple[int, bytes]] | None:
            """The stream's frames of the organisation once every socket has all of them (the
            workers' last frames of a canceled run, e.g. its process's exit line, come later)."""
            held = await stream_messages(stack, "REALTIME", f"realtime.{tenant.org_id}.>")
            tables = [json.loads(data)["table"] for _, data in held]
            default = len([t for t in tables if t != "run_logs"])
            complete = all(
                [f["id"] for f in s.frames] == [seq for seq, _ in held] if s.resume else len(s.frames) == default
                for s in sockets
            )
            return held if complete else None

        held = await until(caught_up, 60, "every frame of the stream on every socket")
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
    cluster.recover()

    # The REALTIME stream holds the organisation's frames in commit order, each once.
    frames = [json.loads(data) for _, data in held]
    assert len({json.dumps(f, sort_keys=True) for f in frames}) == len(frames)  # no frame twice
    writes = [
        (f["record"]["id"], f["record"]["status"])
        for f in frames
        if f["table"] == "runs" and (f["event"] == "INSERT" or f["record"]["status"] == "canceled")
    ]
    assert writes == expected
    for run_id in runs:  # each run's own frames (writes of the APIs and the workers) in order
        statuses = [f["record"]["status"] for f in frames if f["table"] == "runs" and f["record"]["id"] == run_id]
        assert statuses[0] == "queued" and statuses[-1] == "canceled" and statuses.count("canceled") == 1
        assert [STATUS_RANK[s] for s in statuses] == sorted(STATUS_RANK[s] for s in statuses), statuses

    # The workers' wake-ups, one per queued run, in commit order (a hint published again after
    # the relay leader's kill may repeat; it never reorders).
    queued: list[str] = []
    with contextlib.suppress(TimeoutError):
        while True:
            wakeup = json.loads((await wakeups.next_msg(timeout=1)).data)
            if wakeup["org_id"] == tenant.org_id and wakeup["run_id"] not in queued:
                queued.append(wakeup["run_id"])
    await listener.close()
    assert queued == runs

    # Every socket on either gateway got exactly the stream's frames, in its order.
    sequences = [seq for seq, _ in held]
    for socket in sockets:
        if socket.resume:
            assert [f["id"] for f in socket.frames] == sequences, socket.gateway
            assert [{k: v for k, v in f.items() if k != "id"} for f in socket.frames] == frames
        else:  # the default socket: everything but the opt-in run_logs frames
            assert socket.frames == [f for f in frames if f["table"] != "run_logs"], socket.gateway


# -------------------------------------------------------------------------- 4. notifications


async def test_an_invitation_email_is_sent_once_with_two_notifications_consumers(
    cluster: Cluster, tenant: Tenant
) -> None:
    notifications = cluster.urls("notifications")
    assert len(notifications) == 2
    sent_before = sum(counter(url, "icp_notifications_emails_sent_total") for url in notifications)
    addresses = [f"invitee-{i}-{uuid.uuid4().hex[:6]}@e2e.example" for i in range(10)]
    answers = await asyncio.gather(
        *(
            tenant.write(i, "POST", "/api/organisations/invite", json={"email": a, "role": "viewer"})
            for i, a in enumerate(addresses)
        )
    )
    assert [a.status_code for a in answers] == [201] * len(addresses), [a.text for a in answers]
    mail_dir = cluster.stack.data_dir / "mail"

    def received() -> Counter[str]:
        found: Counter[str] = Counter()
        for path in mail_dir.glob("*.eml"):
            to = str(BytesParser(policy=policy.default).parsebytes(path.read_bytes())["To"])
            if to in addresses:
                found[to] += 1
        return found

    async def all_received() -> Counter[str] | None:
        found = received()
        return found if set(found) == set(addresses) else None

    await until(all_received, 60, "an e-mail to every invitee")

    async def settled() -> bool:  # nothing delivered and not yet acknowledged, nothing pending
        nc = await nats.connect(cluster.stack.nats_url(), connect_timeout=5)
        try:
            info = await nc.jetstream().consumer_info("IDENTITY", "notifications-invitations")
        finally:
            await nc.close()
        return info.num_ack_pending == 0 and info.num_pending == 0

    await until(settled, 30, "every invitation event acknowledged")
    assert received() == Counter(dict.fromkeys(addresses, 1))
    sent = sum(counter(url, "icp_notifications_emails_sent_total") for url in notifications) - sent_before
    assert sent == len(addresses)
