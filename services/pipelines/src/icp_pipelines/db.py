"""The pipelines service's database: metadata (with the outbox) and its migrations."""

from __future__ import annotations

from pathlib import Path

from icp_common.db import new_metadata
from icp_common.outbox import Outbox, define_outbox

SERVICE = "pipelines"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

metadata = new_metadata()
outbox_table = define_outbox(metadata)
outbox = Outbox(outbox_table, SERVICE)
