"""What every tool shares: the error envelope, argument parsing, and the pipelines client."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from ..pipelines import PipelinesClient, ToolError

log = logging.getLogger("icp_agent.tools")

ToolResult = dict[str, Any]
ToolFn = Callable[..., Awaitable[ToolResult]]


def tool(fn: ToolFn) -> ToolFn:
    """Wrap a tool body: its dict becomes `{"status": "success", **dict}`; a ToolError (pipelines
    said no: permission, not found, bad input) or any other exception becomes an error result the
    model can read and explain. The signature and docstring (what the model sees) are kept."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> ToolResult:
        started = time.perf_counter()
        try:
            result = await fn(*args, **kwargs)
        except ToolError as exc:
            outcome: ToolResult = exc.result()
        except Exception:
            log.exception("tool %s failed", fn.__name__)
            outcome = {"status": "error", "error": "The tool failed unexpectedly", "code": "internal"}
        else:
            outcome = {"status": "success", **result}
        log.info(
            "tool %s -> %s in %.1f ms",
            fn.__name__,
            outcome["status"] if outcome["status"] == "success" else outcome.get("code"),
            (time.perf_counter() - started) * 1000,
            extra={"tool": fn.__name__},
        )
        return outcome

    return wrapper


class Toolbox:
    """A specialist's tools, bound to the process's pipelines client."""

    def __init__(self, pipelines: PipelinesClient) -> None:
        self.pipelines = pipelines

    def tools(self) -> list[ToolFn]:
        raise NotImplementedError


def parse_date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise ToolError(f"{field} must be a date YYYY-MM-DD, got '{value}'") from None


def bounded(value: int, field: str, low: int, high: int) -> int:
    if not isinstance(value, int) or value < low:
        raise ToolError(f"{field} must be an integer of at least {low}")
    return min(value, high)


def parse_uuid(value: str, field: str) -> str:
    """The canonical text of a UUID argument (the model sometimes adds spaces or capitals)."""
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise ToolError(f"{field} must be a UUID, got '{value}'") from None
