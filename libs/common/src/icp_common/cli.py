"""Command-line entry points of service processes: `<command> serve|migrate|...` with --help."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .config_errors import load_settings
from .logs import configure_logging
from .settings import ServiceSettings
from .telemetry import service_name
from .telemetry import setup as setup_tracing

Command = Callable[[argparse.Namespace], None]


def run_cli(
    prog: str,
    description: str,
    commands: dict[str, tuple[str, Command]],
    settings_factory: Callable[[], ServiceSettings],
    argv: Sequence[str] | None = None,
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse `prog <command>`; every command reads its configuration from INTERLOPER_* variables."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Configuration comes from INTERLOPER_* environment variables (see README, 'Configuration').",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, _) in commands.items():
        sub.add_parser(name, help=help_text, description=help_text)
    if configure is not None:
        configure(parser)
    args = parser.parse_args(argv)
    settings = load_settings(prog, settings_factory)
    configure_logging(prog, settings.log.level, settings.log.format)
    setup_tracing(service_name(prog, args.command))  # off unless OTEL_* configure it
    args.settings = settings
    try:
        commands[args.command][1](args)
    except KeyboardInterrupt:
        pass
    except SystemExit:
        raise
    except Exception:
        logging.getLogger(prog).exception("%s %s failed", prog, args.command)
        sys.exit(1)
