"""idempotency_keys: the first answer of a POST sent with an `Idempotency-Key`

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

from icp_common.db import new_metadata
from icp_common.idempotency import TABLE, define_idempotency_keys

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    define_idempotency_keys(new_metadata()).create(op.get_bind())


def downgrade() -> None:
    op.drop_table(TABLE)
