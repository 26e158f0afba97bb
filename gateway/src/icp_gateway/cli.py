"""`interloper-gateway`: run the API gateway."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from icp_common.cli import run_cli
from icp_common.runtime import serve_http

from .app import create_app
from .settings import Settings


def _serve(args: argparse.Namespace) -> None:
    settings: Settings = args.settings
    serve_http(create_app(settings), settings.http_host, settings.http_port)


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(
        "interloper-gateway",
        "API gateway: session cookie -> signed identity, /api routing, realtime relays.",
        {"serve": ("Serve the public /api", _serve)},
        Settings,
        argv,
    )
