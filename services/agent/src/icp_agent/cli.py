"""`interloper-agent`: run the agent service."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from icp_common.cli import run_cli
from icp_common.db import prepare_database
from icp_common.runtime import serve_http

from .app import create_app
from .db import MIGRATIONS_DIR, SERVICE
from .settings import Settings


def _serve(args: argparse.Namespace) -> None:
    settings: Settings = args.settings
    serve_http(create_app(settings), settings.http_host, settings.http_port)


def _migrate(args: argparse.Namespace) -> None:
    settings: Settings = args.settings
    asyncio.run(prepare_database(settings.postgres, SERVICE, MIGRATIONS_DIR))


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(
        "interloper-agent",
        "Agent service: the AI assistant (sessions and SSE chat).",
        {"serve": ("Serve the agent service", _serve), "migrate": ("Create/upgrade the database", _migrate)},
        Settings,
        argv,
    )
