"""The pipelines service's database: metadata (with the outbox), the ORM base, its migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import DeclarativeBase

from icp_common.db import new_metadata
from icp_common.outbox import Outbox, define_outbox

SERVICE = "pipelines"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

metadata = new_metadata()
outbox_table = define_outbox(metadata)
outbox = Outbox(outbox_table, SERVICE)


class Base(DeclarativeBase):
    """ORM base of every pipelines table (one metadata, one naming convention)."""

    metadata = metadata


def load_models() -> None:
    """Import every domain's models so that `metadata` knows all tables (Alembic, tests)."""
    from .assets import models as _assets  # noqa: F401
    from .backfills import models as _backfills  # noqa: F401
    from .destinations import models as _destinations  # noqa: F401
    from .jobs import models as _jobs  # noqa: F401
    from .resources import models as _resources  # noqa: F401
    from .runs import models as _runs  # noqa: F401
    from .sources import models as _sources  # noqa: F401
