"""``interloper-stack``: run the whole control plane locally (see ``interloper-stack up --help``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from icp_common.telemetry import TRACES_FILE_ENV
from icp_stack.console import FORMAT_ENV, FORMATS, TextConsole, resolve_format
from icp_stack.demo import DEMO_EMAIL
from icp_stack.environment import check_environment
from icp_stack.launcher import (
    COMPONENTS,
    MAX_REPLICAS,
    PORT_KEYS,
    SERVICES,
    StackError,
    StackOptions,
    parse_ports,
    parse_replicas,
    parse_without,
    run_stack,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interloper-stack",
        description="Run the Interloper control plane locally: embedded PostgreSQL, NATS JetStream, "
        "every service process, the gateway and Traefik, each health-gated, in the foreground.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up",
        help="start the stack in the foreground (Ctrl-C stops it)",
        description="Start the stack in the foreground. When everything is healthy, print "
        "'READY http://127.0.0.1:<http-port>' on stdout and write <data-dir>/stack.json. "
        "Logs of every process go to stderr (and <data-dir>/logs/). Ctrl-C/SIGTERM stops everything.",
        epilog=f"components: {', '.join(COMPONENTS)}. "
        f"port names: {', '.join(k for keys in PORT_KEYS.values() for k in keys)}. "
        "Every INTERLOPER_* variable (and PYTHONPATH) of this environment reaches the services; "
        "INTERLOPER_STACK_PORTS='name=port,...' is read like --port. "
        "Tracing is off unless the OpenTelemetry variables are set (OTEL_EXPORTER_OTLP_ENDPOINT, "
        "OTEL_TRACES_SAMPLER, ...): every process and Traefik then export their spans there; see --traces.",
    )
    up.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".data"),
        help="where PostgreSQL, NATS, logs and stack.json live (default: ./.data)",
    )
    up.add_argument("--http-port", type=int, default=8080, help="public port of Traefik (default: 8080)")
    up.add_argument("--http-host", default="127.0.0.1", help="address Traefik listens on (default: 127.0.0.1)")
    up.add_argument("--fresh", action="store_true", help="wipe the data dir first")
    up.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="NAME,...",
        help="leave components out, e.g. --without pipelines-worker,pipelines-scheduler",
    )
    up.add_argument(
        "--replicas",
        action="append",
        default=[],
        metavar="NAME=N,...",
        help=f"run N processes (1-{MAX_REPLICAS}) of a service, each with its own ports, e.g. "
        "--replicas gateway=2,pipelines-worker=3 (services: "
        f"{', '.join(s.name for s in SERVICES)}; default: INTERLOPER_STACK_REPLICAS or 1 each)",
    )
    up.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="fix a port instead of picking a free one (repeatable), e.g. --port gateway=18000",
    )
    up.add_argument(
        "--bin-dir",
        type=Path,
        default=None,
        help="where the service console scripts are (default: the directory of this Python)",
    )
    up.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        help="seconds each component may take to become ready (default: 60)",
    )
    up.add_argument("--no-color", action="store_true", help="no ANSI colours in log prefixes")
    up.add_argument(
        "--log-format",
        choices=FORMATS,
        default=os.environ.get(FORMAT_ENV) or "auto",
        help="console output: 'text' (short lines for a person; requests only when they fail or are "
        "slow), 'json' (every process's lines as written) or 'auto': text when stderr is a terminal "
        f"(default: ${FORMAT_ENV} or auto). The files in <data-dir>/logs keep every line either way.",
    )

    up.add_argument(
        "--traces",
        action="store_true",
        help="write every process's spans (OpenTelemetry, JSON lines) to <data-dir>/traces.jsonl for "
        "inspection (INTERLOPER_TRACES_FILE), besides any OTLP endpoint; Traefik's only go to an OTLP endpoint",
    )
    up.add_argument(
        "--demo",
        action="store_true",
        help="once everything is ready, create (unless it exists) a demo organisation with a working "
        "pipeline for --demo-email, and run it once",
    )
    up.add_argument(
        "--demo-email", default=DEMO_EMAIL, help=f"the local user who owns the demo (default: {DEMO_EMAIL})"
    )

    info = sub.add_parser("info", help="print the stack.json of a running stack")
    info.add_argument("--data-dir", type=Path, default=Path(".data"))
    return parser


class _TextFormatter(logging.Formatter):
    """The launcher's own log lines in text mode, like every other line of the console."""

    def __init__(self, console: TextConsole) -> None:
        super().__init__()
        self.console = console

    def format(self, record: logging.LogRecord) -> str:
        return self.console.render("stack", record.getMessage(), now=record.created) or ""


def _up(args: argparse.Namespace) -> int:
    width = max(len(c) for c in COMPONENTS)
    try:
        log_format = resolve_format(args.log_format, sys.stderr)
    except ValueError as exc:
        print(f"interloper-stack: error: {exc}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "text":
        handler.setFormatter(_TextFormatter(TextConsole(width)))
    else:
        handler.setFormatter(logging.Formatter(f"{'stack':<{width}} | %(message)s"))
    logger = logging.getLogger("icp_stack")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        ports = parse_ports([os.environ.get("INTERLOPER_STACK_PORTS", ""), *args.port])
        without = parse_without(args.without)
        replicas = parse_replicas([os.environ.get("INTERLOPER_STACK_REPLICAS", ""), *args.replicas])
    except StackError as exc:
        print(f"interloper-stack: error: {exc}", file=sys.stderr)
        return 2
    errors, notes = check_environment(os.environ)
    for line in errors:
        print(f"interloper-stack: error: {line}", file=sys.stderr)
    if errors:
        return 2
    for line in notes:
        logger.warning(line)
    bin_dir = args.bin_dir or (
        Path(os.environ["INTERLOPER_STACK_BIN_DIR"]) if os.environ.get("INTERLOPER_STACK_BIN_DIR") else None
    )
    options = StackOptions(
        data_dir=args.data_dir,
        http_port=args.http_port,
        http_host=args.http_host,
        fresh=args.fresh,
        without=without,
        ports=ports,
        bin_dir=bin_dir,
        ready_timeout=args.ready_timeout,
        color=False if args.no_color else None,
        log_format=log_format,
        demo=args.demo,
        demo_email=args.demo_email,
        replicas=replicas,
    )
    if args.traces:
        traces = (args.data_dir / "traces.jsonl").absolute()
        options.environ = {**os.environ, TRACES_FILE_ENV: str(traces)}
    try:
        return asyncio.run(run_stack(options))
    except KeyboardInterrupt:  # before the signal handlers were installed: nothing runs yet
        return 130


def _info(args: argparse.Namespace) -> int:
    path = args.data_dir.absolute() / "stack.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"interloper-stack: no running stack ({path} does not exist)", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    return _info(args)


if __name__ == "__main__":
    sys.exit(main())
