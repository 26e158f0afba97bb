"""`interloper-identity`: run the identity service or its maintenance commands.

interloper-identity serve                         HTTP + gRPC
interloper-identity migrate                       create/upgrade the database
interloper-identity session create --email E [--name N]
                                                  print the raw token of a new session
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from icp_common.config_errors import load_settings
from icp_common.db import create_engine, create_sessionmaker, prepare_database, unit_of_work
from icp_common.logs import configure_logging
from icp_common.runtime import serve_http
from icp_common.telemetry import service_name
from icp_common.telemetry import setup as setup_tracing

from .db import MIGRATIONS_DIR, SERVICE, load_models
from .settings import Settings

PROG = "interloper-identity"
EPILOG = "Configuration comes from INTERLOPER_* environment variables (see README, 'Configuration')."


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    from .app import create_app

    serve_http(create_app(settings), settings.http_host, settings.http_port)


def _migrate(args: argparse.Namespace, settings: Settings) -> None:
    asyncio.run(prepare_database(settings.postgres, SERVICE, MIGRATIONS_DIR))


async def create_session(settings: Settings, email: str, name: str | None) -> str:
    """Open a session for `email` (profile created on first use); returns the raw token."""
    from .auth import service as auth_service

    load_models()
    url = await prepare_database(settings.postgres, SERVICE, MIGRATIONS_DIR)
    engine = create_engine(url, pool_size=1)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            new = await auth_service.session_for_email(session, settings, email, name)
        return new.token
    finally:
        await engine.dispose()


def _session_create(args: argparse.Namespace, settings: Settings) -> None:
    print(asyncio.run(create_session(settings, args.email, args.name)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Identity service: sign-in, sessions, organisations, members, invitations.",
        epilog=EPILOG,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="Serve HTTP and gRPC", description="Serve HTTP and gRPC.", epilog=EPILOG)
    serve.set_defaults(handler=_serve)
    migrate = commands.add_parser(
        "migrate", help="Create/upgrade the database", description="Create/upgrade the database.", epilog=EPILOG
    )
    migrate.set_defaults(handler=_migrate)

    session = commands.add_parser("session", help="Manage sessions", description="Manage sessions.", epilog=EPILOG)
    session_commands = session.add_subparsers(dest="session_command", required=True, metavar="COMMAND")
    create = session_commands.add_parser(
        "create",
        help="Open a session for an e-mail and print its raw token",
        description=(
            "Open a new session (no active organisation) for the profile with this e-mail, creating "
            "the profile on first use, and print the raw session token (the `session_token` cookie value)."
        ),
        epilog=EPILOG,
    )
    create.add_argument("--email", required=True, help="E-mail of the profile")
    create.add_argument("--name", default=None, help="Display name used when the profile is created")
    create.set_defaults(handler=_session_create)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = load_settings(PROG, Settings)
    configure_logging(PROG, settings.log.level, settings.log.format)
    setup_tracing(service_name(PROG, args.command))  # off unless OTEL_* configure it
    try:
        args.handler(args, settings)
    except KeyboardInterrupt:
        pass
    except SystemExit:
        raise
    except Exception:
        logging.getLogger(PROG).exception("%s %s failed", PROG, args.command)
        sys.exit(1)
