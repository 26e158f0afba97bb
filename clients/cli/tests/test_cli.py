"""Command-line parsing: `--help` everywhere, usage errors are exit status 2, options anywhere."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from icp_ctl.cli import build_parser, main
from icp_ctl.output import render, table


def every_command(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_command(sub, (*path, name))


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = list(every_command(build_parser()))
    expected = {("jobs", "run"), ("runs", "logs"), ("runs", "retry"), ("backfills", "cancel"), ("tokens", "revoke")}
    assert expected <= set(commands)
    assert {("sources", "list"), ("destinations", "list"), ("assets", "list"), ("orgs",), ("login",)} <= set(commands)
    for command in commands:
        with pytest.raises(SystemExit) as exited:
            main([*command, "--help"])
        assert exited.value.code == 0, command
        assert "usage: interloper-ctl" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["jobs"],
        ["jobs", "run"],  # no job id
        ["runs", "list", "--status", "bogus"],
        ["jobs", "list", "--output", "yaml"],
        ["backfills", "create", "j1", "--start", "2024-01-01"],  # no --end
        ["nope"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "interloper-ctl" in capsys.readouterr().err


def test_options_go_before_or_after_the_command() -> None:
    parser = build_parser()
    after = parser.parse_args(["runs", "get", "r1", "--output", "json", "--follow"])
    before = parser.parse_args(["--output", "json", "--url", "http://h", "runs", "get", "r1"])
    assert (after.output, after.follow, after.run_id) == ("json", True, "r1")
    assert (before.output, before.url, before.follow) == ("json", "http://h", False)
    assert parser.parse_args(["jobs", "run", "j1", "--partition", "2024-01-02", "-f"]).partition == "2024-01-02"


def test_no_token_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("INTERLOPER_TOKEN", raising=False)
    monkeypatch.delenv("INTERLOPER_SESSION", raising=False)
    assert main(["jobs", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interloper-ctl login" in err


def test_an_unreachable_server_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("icp_ctl.client.time.sleep", lambda _: None)
    # Port 9 (discard) on loopback: nothing listens there in the test environment.
    assert main(["jobs", "list", "--url", "http://127.0.0.1:9", "--token", "ilp_x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("interloper-ctl: error: cannot reach http://127.0.0.1:9")


def test_tables_show_chosen_columns_and_cut_long_cells() -> None:
    rows = [{"id": "r1", "job_id": None, "partition_date": "2024-01-01", "status": "failed", "extra": 1}]
    text = table(rows, ("id", "job_id", "status"))
    assert text.splitlines() == ["ID  JOB_ID  STATUS", "r1  -       failed"]
    out = io.StringIO()
    render([{"timestamp": "t", "event_type": "asset_failed", "error": "x" * 100}], "event", "table", out)
    assert "…" in out.getvalue() and "x" * 100 not in out.getvalue()


def test_a_token_over_plain_http_to_another_host_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("icp_ctl.client.time.sleep", lambda _: None)
    assert main(["jobs", "list", "--url", "http://127.0.0.1:9", "--token", "ilp_x"]) == 1
    assert "warning" not in capsys.readouterr().err  # loopback: nothing crosses a network
    assert main(["jobs", "list", "--url", "http://nonexistent.invalid:9", "--token", "ilp_x"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "interloper-ctl: warning: http://nonexistent.invalid:9 is not https: the token travels unencrypted"
