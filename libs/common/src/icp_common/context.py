"""Per-request context that crosses HTTP -> gRPC -> NATS: request id and caller identity."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

from .identity import Identity

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
identity_var: ContextVar[Identity | None] = ContextVar("identity", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()
