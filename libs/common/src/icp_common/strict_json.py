"""JSON bodies with `NaN`, `Infinity` or numbers beyond a float's range (`1e400`) are malformed.

Python's json (FastAPI's parser) accepts them as non-finite floats, which then fail much later
(serialising a 422 that echoes them, PostgreSQL) as a 500. `reject_non_finite_json` is an
app-wide dependency (`create_service_app` installs it), so it runs before every route's
dependencies: such a body is a 422 `json_invalid`, like any malformed JSON, even unauthenticated
(the contract's precedence: malformed JSON first)."""

from __future__ import annotations

import email.message
import json
import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

MESSAGE = "Out of range float values are not JSON compliant"
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class _NonFinite(ValueError):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token


def _constant(token: str) -> float:
    raise _NonFinite(token)


def _float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _NonFinite(token)
    return value


def _is_json(content_type: str | None) -> bool:
    """As FastAPI decides to parse a body as JSON (no content type, or application/[*+]json)."""
    if not content_type:
        return True
    if content_type == "application/json":  # what nearly every client sends: no header parsing
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def token_position(document: str, token: str) -> int:
    """Index of the first `token` outside string literals (where the parser met it)."""
    in_string = escaped = False
    for index, char in enumerate(document):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif document.startswith(token, index):
            return index
    return 0


def non_finite_error(body: bytes) -> RequestValidationError | None:
    """The 422 for a body holding a non-finite number, else None (other malformed JSON is left to
    FastAPI's own parser, which reports it the same way)."""
    try:
        json.loads(body, parse_constant=_constant, parse_float=_float)
    except _NonFinite as exc:
        document = body.decode("utf-8", "replace")
        error = {
            "type": "json_invalid",
            "loc": ("body", token_position(document, exc.token)),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": MESSAGE},
        }
        return RequestValidationError([error], body=document)
    except ValueError:  # malformed otherwise (JSONDecodeError, bad UTF-8): FastAPI's 422
        return None
    return None


def holds_non_finite(document: Any) -> bool:
    """Whether a parsed JSON document holds a non-finite float (iterative: any nesting depth)."""
    pending = [document]
    while pending:
        item = pending.pop()
        if type(item) is float:
            if not math.isfinite(item):
                return True
        elif type(item) is dict:
            pending.extend(item.values())
        elif type(item) is list:
            pending.extend(item)
    return False


async def reject_non_finite_json(request: Request) -> None:
    if request.method in _BODYLESS or not _is_json(request.headers.get("content-type")):
        return
    body = await request.body()
    if not body:
        return
    try:
        # FastAPI has already parsed a route's JSON body with this same call (the request caches
        # it): the body is parsed once, and only a document holding a non-finite number is
        # parsed again, to name the token's position.
        document = await request.json()
    except (ValueError, RecursionError):  # malformed otherwise: FastAPI's own 422 (or no body field)
        return
    if holds_non_finite(document) and (error := non_finite_error(body)) is not None:
        raise error
