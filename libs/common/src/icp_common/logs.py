"""Structured logging: one JSON object per line with service name and request id."""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import re
import sys
from datetime import UTC, datetime
from typing import Any

from .context import request_id_var

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# uvicorn adds a copy of its message with terminal colours ("color_message"): not for a log file.
_DROPPED = {"color_message"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _plain(value: str) -> str:
    """Without terminal colour codes (a JSON field is read by programs, not a terminal)."""
    return _ANSI.sub("", value) if "\x1b" in value else value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": _plain(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key == "request_id":
                continue
            if key not in _RESERVED and key not in _DROPPED and not key.startswith("_"):
                if isinstance(value, str):
                    value = _plain(value)
                entry[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


# Control characters -> visible escapes (\n, \x1b, ...).
_CONTROLS = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F)}


def _escape_controls(text: str) -> str:
    return text.translate(_CONTROLS)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.service = service

    def formatMessage(self, record: logging.LogRecord) -> str:
        # One record, one line: a client-chosen "\n" (a %0A in a path) must not forge a line.
        # (The traceback, appended after this, keeps its own lines.)
        record.message = _escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        return f"{text} [req={request_id}]" if request_id else text


class _DeferredQueueHandler(logging.handlers.QueueHandler):
    """Enqueue the record and let the listener thread format and write it: the event loop
    only pays for creating the record (the request id is captured here, where it is set)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.__dict__.setdefault("request_id", request_id_var.get())
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        return record


_listener: logging.handlers.QueueListener | None = None


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route every logger (ours, uvicorn's, grpc's) through one queue to a writer thread on
    stderr, so that log I/O never blocks the event loop."""
    global _listener
    output = logging.StreamHandler(sys.stderr)
    output.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    if _listener is not None:
        _listener.stop()
    _listener = logging.handlers.QueueListener(records, output, respect_handler_level=False)
    _listener.start()
    atexit.register(_listener.stop)
    root = logging.getLogger()
    root.handlers[:] = [_DeferredQueueHandler(records)]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Access lines come from our own middleware (with request id and latency).
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
