"""audit_entries: the audit log (append-only; only the retention sweep deletes)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No foreign keys: an entry outlives the organisation, user or token it names.
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("actor_id", sa.String(100), nullable=True),
        sa.Column("target_id", sa.String(200), nullable=True),
        sa.Column("entry", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_entries"),
    )
    # Keyset pagination, newest first, per organisation; retention by time.
    op.create_index("ix_audit_entries_org_time", "audit_entries", ["organisation_id", "timestamp", "id"])
    op.create_index("ix_audit_entries_timestamp", "audit_entries", ["timestamp"])
    # Append-only: an UPDATE is refused by the database itself (retention only DELETEs).
    op.execute(
        "CREATE FUNCTION audit_entries_no_update() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit entries are append-only'; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
        "FOR EACH ROW EXECUTE FUNCTION audit_entries_no_update()"
    )


def downgrade() -> None:
    op.drop_table("audit_entries")
    op.execute("DROP FUNCTION IF EXISTS audit_entries_no_update()")
