"""The notifications service's database: metadata (deliveries + the outbox of dead letters),
the ORM base and its migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import DeclarativeBase

from icp_common.db import new_metadata
from icp_common.outbox import Outbox, define_outbox

SERVICE = "notifications"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

metadata = new_metadata()
# Dead letters are published through the outbox: written in the message's transaction.
outbox_table = define_outbox(metadata)
outbox = Outbox(outbox_table, SERVICE)


class Base(DeclarativeBase):
    """ORM base of every notifications table (one metadata, one naming convention)."""

    metadata = metadata


def load_models() -> None:
    """Import every domain's models so that `metadata` knows all tables (Alembic, tests)."""
    from .alerts import models as _alerts  # noqa: F401
    from .deliveries import models as _deliveries  # noqa: F401
