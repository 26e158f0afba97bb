"""The chat turn being run: who is chatting (their identity is what every tool call carries)
and the turn's own counters. Set by the chat service for the duration of one runner call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass

from icp_common.identity import Identity


@dataclass
class ChatTurn:
    identity: Identity
    session_id: str
    message: str
    model_calls: int = 0


_turn: ContextVar[ChatTurn | None] = ContextVar("icp_agent_chat_turn", default=None)


class NoChatTurn(RuntimeError):
    """A tool or scripted model was used outside of a chat turn."""


def current_turn() -> ChatTurn:
    turn = _turn.get()
    if turn is None:
        raise NoChatTurn("no chat turn in progress")
    return turn


@contextmanager
def chat_turn(turn: ChatTurn) -> Iterator[ChatTurn]:
    token = _turn.set(turn)
    try:
        yield turn
    finally:
        with suppress(ValueError):  # closed from another context (a finalizer): nothing to restore
            _turn.reset(token)
