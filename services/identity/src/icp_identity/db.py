"""The identity service's database: metadata (with the outbox), the ORM base, its migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import DeclarativeBase

from icp_common.db import new_metadata
from icp_common.idempotency import IdempotencyKeys, define_idempotency_keys
from icp_common.outbox import Outbox, define_outbox

SERVICE = "identity"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

metadata = new_metadata()
outbox_table = define_outbox(metadata)
outbox = Outbox(outbox_table, SERVICE)
idempotency_keys = IdempotencyKeys(define_idempotency_keys(metadata))


class Base(DeclarativeBase):
    """ORM base of every identity table (one metadata, one naming convention)."""

    metadata = metadata


def load_models() -> None:
    """Import every domain's models so that `metadata` knows all tables (Alembic, tests)."""
    from .audit import models as _audit  # noqa: F401
    from .invitations import models as _invitations  # noqa: F401
    from .members import models as _members  # noqa: F401
    from .organisations import models as _organisations  # noqa: F401
    from .profiles import models as _profiles  # noqa: F401
    from .sessions import models as _sessions  # noqa: F401
    from .tokens import models as _tokens  # noqa: F401
