"""The NATS contracts against payloads captured from the publishers before the contracts existed
(identity's events, the realtime frame, the workers' commands, the dead letter): each decodes, and
what the outbox writes for it again is the same bytes (stored stream messages and the web UI's
frame contract stay valid). A malformed payload is a ContractError, never another exception."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from icp_common import contracts
from icp_common.db import create_engine, create_sessionmaker, new_metadata, unit_of_work
from icp_common.outbox import Outbox, define_outbox

metadata = new_metadata()
table = define_outbox(metadata)

E, INV, ORG, U, S1, S2, R1, J, R2 = (f"00000000-0000-4000-8000-00000000000{n}" for n in "123456789")
AT = "2026-12-12T01:02:03.456789"

# Captured from icp_identity.events, icp_notifications' DeadLetter, icp_pipelines.realtime.message
# and icp_pipelines.commands as the outbox encoded them (compact JSON, declaration order).
CAPTURED: list[tuple[type[contracts.Contract], str]] = [
    (
        contracts.InvitationCreated,
        f'{{"event_id":"{E}","invitation_id":"{INV}","org_id":"{ORG}","org_name":"Acme","email":"bob@example.com",'
        f'"role":"editor","inviter_name":"Alice","inviter_email":"alice@example.com","expires_at":"{AT}Z"}}',
    ),
    (contracts.MembershipRemoved, f'{{"event_id":"{E}","org_id":"{ORG}","user_id":"{U}"}}'),
    (contracts.SessionRevoked, f'{{"event_id":"{E}","user_id":"{U}","session_ids":["{S1}","{S2}"]}}'),
    (contracts.SessionSwitched, f'{{"event_id":"{E}","user_id":"{U}","session_id":"{S1}","org_id":"{ORG}"}}'),
    (
        contracts.RealtimeFrame,
        f'{{"table":"runs","event":"UPDATE","record":{{"id":"{R1}","job_id":"{J}","org_id":"{ORG}","status":"running",'
        f'"created_at":"{AT}+00:00","started_at":"{AT}+00:00","backfill_id":null,"completed_at":null,'
        '"partition_date":"2026-12-01"}}',
    ),
    (
        contracts.RealtimeFrame,
        f'{{"table":"events","event":"INSERT","record":{{"id":"{R2}","error":null,"org_id":"{ORG}","run_id":"{R1}",'
        f'"message":"3 rows","asset_id":null,"asset_key":"events","timestamp":"{AT}+00:00","traceback":null,'
        '"event_type":"asset_materialized","backfill_id":null,"partition_or_window":{"start":"2026-12-01"}}}',
    ),
    (contracts.RunQueued, f'{{"run_id":"{R1}","org_id":"{ORG}"}}'),
    (contracts.RunCancel, f'{{"run_ids":["{R1}","{R2}"]}}'),
    (
        contracts.DeadLetter,
        f'{{"event_id":"{E}","kind":"invitation","invitation_id":"{INV}","org_id":"{ORG}","recipient":"bob@example.com",'
        f'"attempts":5,"error":"550 no such user","failed_at":"{AT}Z"}}',
    ),
]


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database, pool_size=2)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_captured_payloads_round_trip_through_the_outbox(engine: AsyncEngine) -> None:
    outbox = Outbox(table, "contracts-test")
    async with unit_of_work(create_sessionmaker(engine)) as session:
        for model, wire in CAPTURED:
            await outbox.enqueue(session, "t.contract", model.decode(wire.encode()).payload())
    async with engine.connect() as conn:
        written = list((await conn.execute(select(table.c.payload).order_by(table.c.id))).scalars())
    assert written == [wire for _, wire in CAPTURED]


def test_identity_events_carry_what_their_consumers_read() -> None:
    created = contracts.InvitationCreated.decode(CAPTURED[0][1])
    assert (created.event_id, created.org_id, created.email) == (uuid.UUID(E), uuid.UUID(ORG), "bob@example.com")
    assert contracts.SessionRevoked.decode(CAPTURED[2][1]).session_ids == [uuid.UUID(S1), uuid.UUID(S2)]
    # A token in an (old or forged) invitation event is not part of the message.
    forged = CAPTURED[0][1][:-1] + ',"token":"stolen"}'
    assert "token" not in contracts.InvitationCreated.decode(forged).payload()


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (contracts.InvitationCreated, b"not json"),
        (contracts.InvitationCreated, b"\xff\xfe"),
        (contracts.InvitationCreated, b"[]"),
        (contracts.InvitationCreated, f'{{"event_id":"{E}","invitation_id":"{INV}","org_id":"{ORG}"}}'.encode()),
        (contracts.InvitationCreated, CAPTURED[0][1].replace(f"{AT}Z", AT).encode()),  # naive expiry
        (contracts.MembershipRemoved, f'{{"event_id":"{E}","org_id":"o1","user_id":"{U}"}}'.encode()),
        (contracts.SessionRevoked, f'{{"event_id":"{E}","user_id":"{U}","session_ids":"{S1}"}}'.encode()),
        (contracts.SessionSwitched, b"null"),
        (contracts.RealtimeFrame, b'{"table":"jobs","event":"INSERT","record":{}}'),
        (contracts.RealtimeFrame, b'{"table":"runs","event":"DELETE","record":{}}'),
        (contracts.RunQueued, f'{{"run_id":"{R1}"}}'.encode()),
        (contracts.RunCancel, b'{"run_ids":["not-a-uuid"]}'),
        (contracts.DeadLetter, b"{}"),
    ],
)
def test_malformed_payloads_are_contract_errors(model: type[contracts.Contract], data: bytes) -> None:
    with pytest.raises(contracts.ContractError, match=f"not a {model.__name__}"):
        model.decode(data)
