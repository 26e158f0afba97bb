"""`interloper-pipelines`: the pipelines API, scheduler and worker processes."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from icp_common.cli import Command, run_cli
from icp_common.db import prepare_database
from icp_common.runtime import serve_http

from .app import create_app
from .background import ProcessKind
from .db import MIGRATIONS_DIR, SERVICE
from .settings import Settings


def _process(kind: ProcessKind) -> Command:
    def run(args: argparse.Namespace) -> None:
        settings: Settings = args.settings
        serve_http(create_app(settings, kind), settings.http_host, settings.http_port)

    return run


def _migrate(args: argparse.Namespace) -> None:
    settings: Settings = args.settings
    asyncio.run(prepare_database(settings.postgres, SERVICE, MIGRATIONS_DIR))


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(
        "interloper-pipelines",
        "Pipelines service: catalog, resources, sources, assets, jobs, runs; scheduler and workers.",
        {
            "serve": ("Serve the pipelines API (HTTP and gRPC)", _process("api")),
            "scheduler": ("Run the scheduler (cron, backfills, reaper); health on HTTP", _process("scheduler")),
            "worker": ("Run a worker that executes queued runs; health on HTTP", _process("worker")),
            "migrate": ("Create/upgrade the database", _migrate),
        },
        Settings,
        argv,
    )
