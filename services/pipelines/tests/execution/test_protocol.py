"""The worker <-> run process protocol (execution/protocol.py): the run process executes user
code, so whatever it writes is decoded into a well-formed reply or dropped, never trusted."""

from __future__ import annotations

import json

import pytest

from icp_pipelines.execution import protocol


def line(value: object) -> bytes:
    return json.dumps(value).encode() + b"\n"


def test_replies_round_trip():
    done = protocol.done("failed", "boom", reported=True)
    assert protocol.decode_reply(protocol.encode(done)) == done
    event: protocol.EventMessage = {"t": "event", "type": "log", "ts": "2026-01-01T00:00:00+00:00", "meta": {"a": 1}}
    assert protocol.decode_reply(protocol.encode(event)) == event
    assert protocol.decode_reply(protocol.encode({"t": "ready", "pid": 42})) == {"t": "ready", "pid": 42}


@pytest.mark.parametrize(
    "forged",
    [
        [1, 2],  # not an object (crashed the worker's run with an AttributeError before)
        "done",
        None,
        {"t": "run", "run_id": "x"},  # a worker's message, not a reply
        {"t": "unknown"},
        {"type": "log"},
        {"t": "event", "type": 7, "meta": {}},
        {"t": "event", "type": "log", "meta": ["not", "a", "dict"]},
    ],
)
def test_malformed_replies_are_dropped(forged):
    assert protocol.decode_reply(line(forged)) is None


def test_replies_are_normalised():
    assert protocol.decode_reply(line({"t": "done", "status": "SUCCESS!", "reported": "yes", "error": 3})) == {
        "t": "done",
        "status": "failed",  # anything but "success" is a failure
        "error": "3",
        "reported": True,
    }
    assert protocol.decode_reply(line({"t": "event", "type": "log", "ts": 5})) == {
        "t": "event",
        "type": "log",
        "ts": None,  # the worker stamps it on arrival
        "meta": {},
    }
    with pytest.raises(ValueError):
        protocol.decode_reply(b"{not json\n")


def test_commands_the_child_accepts():
    assert protocol.decode_command(line({"t": "init", "catalog": []})) == {"t": "init", "catalog": []}
    assert protocol.decode_command(line({"t": "other"})) is None


def test_text_is_bounded_on_both_sides():
    bounded = protocol.truncate("x" * (protocol.MAX_TEXT + 10))
    assert len(bounded) == protocol.MAX_TEXT and bounded.endswith(protocol.TRUNCATED)
    assert protocol.truncate("short") == "short"
