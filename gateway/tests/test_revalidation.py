"""Re-checks of open realtime streams: which answer of identity closes a stream, with which code.
(End to end, through Traefik and the real identity service: tests-e2e/test_realtime.py.)"""

from __future__ import annotations

import asyncio

import pytest

from icp_common.errors import Unavailable
from icp_common.identity import Identity
from icp_gateway.realtime import Client
from icp_gateway.revalidation import revalidate, verdict


def client() -> Client:
    return Client("o1", "u1", "s1", with_ids=False)


def ok(**changes: object) -> Identity:
    values: dict[str, object] = {
        "state": "ok",
        "user_id": "u1",
        "session_id": "s1",
        "org_id": "o1",
        "org_exists": True,
        "role": "viewer",
    }
    return Identity(**{**values, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (ok(), None),
        (ok(role="admin"), None),
        (Identity(state="invalid"), (4401, "session ended")),  # expired, logged out, profile gone
        (Identity.anonymous(), (4401, "session ended")),
        (ok(session_id="s2"), (4401, "session ended")),
        (ok(org_id="o2"), (4409, "organisation switched; reconnect")),
        (ok(org_id=None), (4409, "organisation switched; reconnect")),
        (ok(role=None), (4403, "membership removed")),
        (ok(org_exists=False), (4403, "membership removed")),
    ],
)
def test_verdict(identity: Identity, expected: tuple[int, str] | None) -> None:
    assert verdict(client(), identity) == expected


async def test_a_stream_is_closed_at_the_first_recheck_that_refuses_it() -> None:
    answers = [ok(), Unavailable("identity down"), ok(), Identity(state="invalid")]
    seen: list[str | None] = []

    async def authenticate(token: str | None) -> Identity:
        seen.append(token)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    stream = client()
    await asyncio.wait_for(revalidate(stream, "cookie", authenticate, 0.01), 5)
    assert (stream.close_code, stream.close_reason) == (4401, "session ended")
    assert seen == ["cookie"] * 4 and not answers  # identity being down kept the stream open
    assert await stream.queue.get() is None  # its sender wakes up and stops


async def test_the_recheck_ends_with_its_stream() -> None:
    calls = 0

    async def authenticate(token: str | None) -> Identity:
        nonlocal calls
        calls += 1
        return ok()

    stream = client()
    task = asyncio.create_task(revalidate(stream, "cookie", authenticate, 3600))
    await asyncio.sleep(0)
    stream.close(1000, "client left")
    await asyncio.wait_for(task, 5)
    assert calls == 0 and stream.close_code == 1000
