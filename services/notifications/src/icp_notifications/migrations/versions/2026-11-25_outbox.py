"""outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import MetaData

from icp_common.outbox import define_outbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    define_outbox(MetaData()).create(op.get_bind())


def downgrade() -> None:
    op.drop_table("outbox")
