"""audit_entries: DELETE refused too, except by the retention sweep

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The sweep marks its transaction (SET LOCAL interloper.audit_retention = 'on') and may only
    # delete entries past the shortest retention allowed (1 day); any other DELETE is refused.
    op.execute(
        "CREATE FUNCTION audit_entries_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF current_setting('interloper.audit_retention', true) = 'on' "
        "AND OLD.timestamp < now() - interval '1 day' THEN RETURN OLD; END IF; "
        "RAISE EXCEPTION 'audit entries are append-only (only the retention sweep deletes)'; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
        "FOR EACH ROW EXECUTE FUNCTION audit_entries_no_delete()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_entries_no_delete ON audit_entries")
    op.execute("DROP FUNCTION IF EXISTS audit_entries_no_delete()")
