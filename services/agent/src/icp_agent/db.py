"""The agent service's database (assistant sessions) and its migrations."""

from __future__ import annotations

from pathlib import Path

from icp_common.db import new_metadata

SERVICE = "agent"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

metadata = new_metadata()
