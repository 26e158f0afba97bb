"""Domain errors: raised by service code, mapped once per transport (HTTP, gRPC, NATS).

Each carries the client-facing `detail` exactly as the public contract spells it.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 400
    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class InvalidInput(DomainError):
    status_code = 400
    grpc_code = "INVALID_ARGUMENT"


class Unauthenticated(DomainError):
    status_code = 401
    grpc_code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    status_code = 403
    grpc_code = "PERMISSION_DENIED"


class NotFound(DomainError):
    status_code = 404
    grpc_code = "NOT_FOUND"


class Conflict(DomainError):
    status_code = 409
    grpc_code = "ALREADY_EXISTS"


class Unprocessable(DomainError):
    """A semantically invalid request (422) with a plain-string detail."""

    status_code = 422
    grpc_code = "INVALID_ARGUMENT"


class TooManyRequests(DomainError):
    """A rate limit (429); pass `headers={"Retry-After": ...}`."""

    status_code = 429
    grpc_code = "RESOURCE_EXHAUSTED"


class Unavailable(DomainError):
    status_code = 503
    grpc_code = "UNAVAILABLE"


class UpstreamError(DomainError):
    """A third-party or internal dependency failed (502)."""

    status_code = 502
    grpc_code = "UNAVAILABLE"


DATA_ERROR_DETAIL = "Invalid value: not accepted by the database"


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a database error (through SQLAlchemy's and the driver's wrappers), or ""."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str):
            return state
        seen = getattr(seen, "orig", None) or seen.__cause__
    return ""


# Answer of every transport while the database cannot be reached (restarting, a connection it
# closed): retryable, never a 500.
DATABASE_UNAVAILABLE_DETAIL = "Service unavailable: database"


def is_unavailable_error(exc: BaseException) -> bool:
    """The database is unreachable right now: the connection refused or lost (an OSError, a
    connection SQLAlchemy saw invalidated or closed) or the server not accepting connections
    (SQLSTATE class 08, 57P0x: starting up, shutting down)."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, OSError) or getattr(seen, "connection_invalidated", False):
            return True
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state.startswith("57P0")):
            return True
        if type(seen).__name__ == "InterfaceError" and "connection is closed" in str(seen):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


# Answer of an HTTP request whose transaction PostgreSQL aborted for a concurrent one (a
# deadlock, a serialization failure): nothing was committed, the client may simply retry.
TRANSACTION_CONFLICT_DETAIL = "Service busy: a concurrent change interfered, retry"
TRANSACTION_CONFLICT_STATES = ("40P01", "40001")  # deadlock_detected, serialization_failure


def is_transaction_conflict(exc: BaseException) -> bool:
    """PostgreSQL aborted the transaction to resolve a conflict with another one (retryable)."""
    return sqlstate(exc) in TRANSACTION_CONFLICT_STATES


def is_data_error(exc: BaseException) -> bool:
    """A value PostgreSQL refuses (class 22: NUL in text, out-of-range numbers, bad JSON): the
    client's mistake, answered as invalid input by every transport."""
    return sqlstate(exc).startswith("22")
