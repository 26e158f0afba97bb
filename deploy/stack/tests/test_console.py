"""Text console lines (icp_stack.console): what a person sees of `interloper-stack up`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from icp_stack.console import TextConsole, resolve_format

console = TextConsole(width=19)


def _json(logger: str, msg: str, level: str = "info", **extra: object) -> str:
    entry = {"ts": "2026-12-05T01:26:08.110+00:00", "level": level, "service": "interloper-gateway"}
    return json.dumps({**entry, "logger": logger, "msg": msg, "request_id": "7a6be502", **extra})


def _access(path: str, status: int, ms: float) -> str:
    return _json("icp.http", f"GET {path} -> {status} in {ms} ms", status=status, duration_ms=ms)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    assert resolve_format("auto", _Tty()) == "text"
    assert resolve_format(None, _Tty()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", _Tty()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"
    with pytest.raises(ValueError, match="log format must be one of auto, text, json"):
        resolve_format("yaml", io.StringIO())


def test_a_json_line_becomes_one_text_line_with_its_fields() -> None:
    line = console.render("pipelines", _json("icp_pipelines.worker", "run started", run_id="r1", note="a b"))
    assert line is not None
    clock, rest = line.split(" ", 1)
    assert len(clock) == 8 and clock.count(":") == 2
    assert rest == f'{"pipelines":<19} INFO  run started run_id=r1 note="a b"'
    assert "{" not in line and "request_id" not in line


def test_successful_fast_requests_are_left_out_errors_and_slow_ones_stay() -> None:
    for path in ("/", "/_nuxt/entry.js", "/favicon.ico", "/fonts/x.woff2", "/api/health", "/api/jobs/"):
        assert console.render("gateway", _access(path, 200, 3.2)) is None, path
        assert console.render("pipelines", _access(path, 304, 1.0)) is None, path
    # A client error is the gateway's line only (the service's copy would repeat it).
    assert console.render("gateway", _access("/api/runs/", 400, 4.5)) is not None
    assert console.render("pipelines", _access("/api/runs/", 400, 0.8)) is None
    assert console.render("pipelines", _access("/api/runs/", 500, 0.8)) is not None
    failed = console.render("gateway", _access("/favicon.ico", 404, 1.2))
    assert failed is not None and failed.endswith("GET /favicon.ico -> 404 in 1.2 ms")
    slow = console.render("gateway", _access("/api/health", 200, 2500.0))
    assert slow is not None and "GET /api/health -> 200 in 2500.0 ms" in slow
    assert console.render("gateway", _access("/api/runs/", 500, 9.0)) is not None


def test_start_up_chatter_is_left_out_but_warnings_stay() -> None:
    assert console.render("identity", _json("uvicorn.error", "Waiting for application startup.")) is None
    assert console.render("mailcatcher", _json("mail.log", "('127.0.0.1', 40972) EOF received")) is None
    assert console.render("agent", _json("alembic.runtime.migration", "Context impl PostgresqlImpl.")) is None
    assert console.render("agent", _json("alembic.runtime.migration", "Running upgrade 0001 -> 0002, x")) is not None
    nats_banner = "[11094] 2026/12/05 01:25:57.147233 [INF] Starting JetStream"
    assert console.render("nats", nats_banner) is None
    nats_warning = console.render("nats", "[11094] 2026/12/05 01:25:57.147233 [WRN] slow consumer")
    assert nats_warning is not None and " WARN  " in nats_warning
    traefik_info = json.dumps({"level": "info", "time": "2026-12-05T01:26:07Z", "message": "Starting provider"})
    assert console.render("traefik", traefik_info) is None
    traefik_error = json.dumps({"level": "error", "time": "2026-12-05T01:26:07Z", "message": "upstream down"})
    assert (line := console.render("traefik", traefik_error)) is not None and "ERROR upstream down" in line
    warned = console.render("identity", _json("uvicorn.error", "Invalid HTTP request", level="warning"))
    assert warned is not None and " WARN  Invalid HTTP request" in warned


def test_colour_codes_never_reach_the_text_and_tracebacks_are_indented() -> None:
    line = console.render(
        "gateway",
        _json("uvicorn.error", "boom", level="error", color_message="\x1b[31mboom\x1b[0m", exc="Traceback\n  File x"),
    )
    assert line is not None
    assert "\x1b" not in line and "color_message" not in line
    assert line.splitlines()[1:] == ["    Traceback", "      File x"]
    multi = console.render(
        "identity", _json("uvicorn.error", "Traceback (most recent call last):\n  File y", level="error")
    )
    assert multi is not None and multi.splitlines()[1:] == ["      File y"]
    assert multi.splitlines()[0].endswith("ERROR Traceback (most recent call last):")
    probe = "2026-12-05 01:31:38.449 UTC [31746] postgres@postgres FATAL:  the database system is starting up"
    assert console.render("postgres", probe) is None
    plain = console.render("postgres", "\x1b[1m2026-12-05 01:25:57.719 UTC [11120] LOG:  ready\x1b[0m")
    assert (
        plain is not None
        and "\x1b" not in plain
        and plain.endswith("INFO  2026-12-05 01:25:57.719 UTC [11120] LOG:  ready")
    )


def test_colours_only_for_the_name_and_bad_levels_when_asked() -> None:
    line = console.render("gateway", _access("/x", 500, 1.0), color="36")
    assert line is not None and "\x1b[36mgateway" in line and "\x1b[31mERROR" not in line
    error = console.render("gateway", _json("icp.http", "unhandled error", level="error"), color="36")
    assert error is not None and "\x1b[31mERROR" in error


def test_a_bad_log_format_setting_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from icp_stack.cli import main

    monkeypatch.setenv("INTERLOPER_STACK_LOG_FORMAT", "yaml")
    assert main(["up", "--data-dir", str(tmp_path / "data")]) == 2
    assert "log format must be one of auto, text, json (got 'yaml')" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
