"""assistant sessions: the tables of google-adk's DatabaseSessionService (schema v1)

ADK owns the layout of these tables (sessions, events, app_states, user_states,
adk_internal_metadata); this revision creates them once, under the migration lock, so that
replicas starting together never race on DDL. At run time ADK only finds them in place (its
own `prepare_tables()` is then a no-op apart from creating indexes a newer ADK may add).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ADK_TABLES = ("events", "sessions", "app_states", "user_states", "adk_internal_metadata")


def upgrade() -> None:
    from google.adk.sessions.schemas.v1 import Base

    Base.metadata.create_all(op.get_bind())
    # The schema version ADK reads to pick its v1 (JSON) storage classes.
    op.execute(
        "INSERT INTO adk_internal_metadata (key, value) VALUES ('schema_version', '1') ON CONFLICT (key) DO NOTHING"
    )


def downgrade() -> None:
    for table in ADK_TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
