"""JSON log lines: programs read them, so no terminal colour codes in any field."""

from __future__ import annotations

import json
import logging

from icp_common.logs import JsonFormatter


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_uvicorn_colour_copy_of_the_message_is_dropped() -> None:
    # What uvicorn logs at start: the message plus a coloured copy of it in "color_message".
    record = _record("Started server process [%d]", 42, color_message="Started server process [\x1b[36m%d\x1b[0m]")
    entry = json.loads(JsonFormatter("svc").format(record))
    assert entry["msg"] == "Started server process [42]"
    assert "color_message" not in entry
    assert "\x1b" not in json.dumps(entry) and "\\u001b" not in json.dumps(entry)


def test_colour_codes_are_stripped_from_the_message_and_extra_fields() -> None:
    record = _record("\x1b[1mbold\x1b[0m %s", "\x1b[31mred\x1b[0m", detail="\x1b[32mgreen\x1b[0m", count=3)
    entry = json.loads(JsonFormatter("svc").format(record))
    assert entry["msg"] == "bold red"
    assert entry["detail"] == "green"
    assert entry["count"] == 3
