"""OpenAPI documentation of the error bodies of the cancel/retry routes (the shared convention:
`{"detail": "<message>"}`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    detail: str


def errors(**described: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: status -> description, each with the `{"detail"}` body."""
    return {
        int(code.removeprefix("e")): {"model": ErrorDetail, "description": text} for code, text in described.items()
    }


AUTH_ERRORS = {
    "e400": "No organisation selected",
    "e401": "Not authenticated / Invalid or expired session",
    "e403": "Requires editor role or higher / Not a member of this organisation",
}
