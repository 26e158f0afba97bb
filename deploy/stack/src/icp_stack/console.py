"""What ``interloper-stack up`` prints: JSON lines as the processes write them (default outside a
terminal), or short text lines for a person (default on a terminal, ``--log-format text``).

Text mode renders the services' JSON log lines as ``12:03:04 pipelines  INFO  message key=value``
and leaves out what a person does not need to watch: access lines of successful, fast requests
(static files, health probes, API calls), and start-up chatter (uvicorn banners, NATS's banner,
the mail catcher's connection log). Nothing is lost: every process's own lines stay in
``<data-dir>/logs/<name>.log`` (services log failed and slow requests, every request with its path
with ``INTERLOPER_ACCESS_LOG=true``; Traefik's own access log, ``<data-dir>/traefik/access.log``,
leaves paths out as they can carry secrets).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, TextIO

FORMATS = ("auto", "text", "json")
FORMAT_ENV = "INTERLOPER_STACK_LOG_FORMAT"
SLOW_MS = 1000.0
"""Access lines of requests at least this slow are shown in text mode (as are errors)."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ACCESS = re.compile(r"^(?P<method>[A-Z]+) (?P<path>\S+) -> (?P<status>\d{3}) in (?P<ms>[0-9.]+) ms$")
_LEVELS = {"warning": "WARN", "warn": "WARN", "critical": "ERROR", "fatal": "ERROR", "panic": "ERROR"}
_SHOWN_ALWAYS = ("WARN", "ERROR")
# Fields of our JSON lines (icp_common.logs) that the text line already shows or does not need.
_SKIP = {"ts", "time", "level", "service", "logger", "msg", "message", "request_id", "color_message", "exc"}
_ACCESS_FIELDS = {"status", "duration_ms"}
# INFO lines that only narrate a start: (logger, message prefix); "" matches every message.
_CHATTER = (
    ("uvicorn.error", ""),
    ("mail.log", ""),
    ("alembic.runtime.migration", "Context impl"),
    ("alembic.runtime.migration", "Will assume"),
)
_NATS_INFO = re.compile(r"^\[\d+\] \S+ \S+ \[INF\] ")
_COLOR_OF_LEVEL = {"WARN": "33", "ERROR": "31"}


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def resolve_format(value: str | None, stream: TextIO) -> str:
    """``text`` or ``json`` for ``auto``/``text``/``json`` (None or "" = auto): auto is text when
    ``stream`` (where the logs go) is a terminal."""
    value = (value or "auto").strip().lower()
    if value not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)} (got {value!r})")
    if value == "auto":
        isatty = getattr(stream, "isatty", None)
        return "text" if callable(isatty) and isatty() else "json"
    return value


def _value(value: Any) -> str:
    text = strip_ansi(value if isinstance(value, str) else json.dumps(value))
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


class TextConsole:
    """Renders one line of a component for a person; ``None`` leaves the line out."""

    def __init__(self, width: int, slow_ms: float = SLOW_MS) -> None:
        self.width = width
        self.slow_ms = slow_ms

    def render(self, name: str, line: str, color: str = "", now: float | None = None) -> str | None:
        """``color``: the ANSI colour of the component's name ("" = no colours)."""
        line = strip_ansi(line.rstrip("\r\n"))
        entry = _json_object(line)
        if entry is None:
            return self._plain(name, line, color, now)
        message = entry.get("msg", entry.get("message"))
        if not isinstance(message, str):
            return self._plain(name, line, color, now)
        level = _level(entry.get("level"))
        logger = str(entry.get("logger", ""))
        skip = set(_SKIP)
        if logger == "icp.http" and (access := _ACCESS.match(message)):
            # The gateway's line says it all; a service's own line only adds to a server error.
            least = 400 if name == "gateway" else 500
            if int(access["status"]) < least and float(access["ms"]) < self.slow_ms:
                return None
            skip |= _ACCESS_FIELDS
        elif level not in _SHOWN_ALWAYS and (_chatter(logger, message) or name == "traefik"):
            return None  # start-up narration (Traefik's included: its access log is a file)
        fields = " ".join(f"{k}={_value(v)}" for k, v in entry.items() if k not in skip)
        first, *more = message.strip().splitlines() or [""]
        text = first + (f" {fields}" if fields else "")
        exc = entry.get("exc")
        if isinstance(exc, str) and exc:
            more += exc.rstrip("\n").splitlines()
        if more:  # continuation lines (tracebacks) indented under their line
            text += "\n" + "\n".join("    " + part for part in more)
        return self._line(name, level, text, color, _timestamp(entry) if now is None else now)

    def _plain(self, name: str, line: str, color: str, now: float | None) -> str | None:
        if name == "nats" and _NATS_INFO.match(line):
            return None  # its banner; warnings and errors ([WRN], [ERR]) stay
        if name == "postgres" and line.endswith("the database system is starting up"):
            return None  # the launcher's own readiness probe, refused while PostgreSQL starts
        level = "ERROR" if line.startswith("ERROR") or " ERROR:" in line or " FATAL:" in line else "INFO"
        if " WARNING:" in line or "[WRN]" in line:
            level = "WARN"
        if "[ERR]" in line or "[FTL]" in line:
            level = "ERROR"
        return self._line(name, level, line, color, now)

    def _line(self, name: str, level: str, text: str, color: str, stamp: float | None) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(time.time() if stamp is None else stamp))
        label = f"{name:<{self.width}}"
        shown = f"{level:<5}"
        if color:
            label = f"\x1b[{color}m{label}\x1b[0m"
            if level in _COLOR_OF_LEVEL:
                shown = f"\x1b[{_COLOR_OF_LEVEL[level]}m{shown}\x1b[0m"
        return f"{clock} {label} {shown} {text}"


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _level(value: Any) -> str:
    text = str(value or "info").lower()
    return _LEVELS.get(text, text.upper())


def _chatter(logger: str, message: str) -> bool:
    return any(logger == name and message.startswith(prefix) for name, prefix in _CHATTER)


def _timestamp(entry: dict[str, Any]) -> float | None:
    from datetime import datetime

    stamp = entry.get("ts", entry.get("time"))
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
