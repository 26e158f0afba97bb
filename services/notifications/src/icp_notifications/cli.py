"""`interloper-notifications`: run the notifications service (or the local mail catcher)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from icp_common.cli import run_cli
from icp_common.db import prepare_database
from icp_common.runtime import run_until_signalled, serve_http

from .app import create_app
from .db import MIGRATIONS_DIR, SERVICE
from .settings import Settings

MAILCATCHER_DEFAULT_PORT = 1025


def _serve(args: argparse.Namespace) -> None:
    settings: Settings = args.settings
    serve_http(create_app(settings), settings.http_host, settings.http_port)


def _migrate(args: argparse.Namespace) -> None:
    settings: Settings = args.settings
    asyncio.run(prepare_database(settings.postgres, SERVICE, MIGRATIONS_DIR))


def _mailcatcher(args: argparse.Namespace) -> None:
    from .mailcatcher import serve

    settings: Settings = args.settings
    directory = Path(args.dir) if args.dir else Path(settings.data_dir) / "mail"

    async def main(stop: asyncio.Event) -> None:
        await serve(args.host, args.port, directory.absolute(), stop)

    asyncio.run(run_until_signalled(main))


def _mailcatcher_options(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:  # the subcommand parsers made by run_cli
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices["mailcatcher"]
            sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
            sub.add_argument(
                "--port", type=int, default=MAILCATCHER_DEFAULT_PORT, help="SMTP port (default: %(default)s)"
            )
            sub.add_argument("--dir", default="", help="where to write .eml files (default: $INTERLOPER_DATA_DIR/mail)")


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(
        "interloper-notifications",
        "Notifications service: invitation e-mails over SMTP from NATS events.",
        {
            "serve": ("Serve the notifications service", _serve),
            "migrate": ("Create/upgrade the database", _migrate),
            "mailcatcher": ("Run a local SMTP server that saves every message as .eml (local stack)", _mailcatcher),
        },
        Settings,
        argv,
        configure=_mailcatcher_options,
    )
