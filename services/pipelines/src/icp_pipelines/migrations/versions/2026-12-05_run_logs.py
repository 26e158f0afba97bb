"""run_logs: the lines a run's code wrote (stdout, stderr, logging), deleted with the run

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """CREATE TABLE run_logs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    run_id UUID NOT NULL,
    org_id UUID NOT NULL,
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    stream VARCHAR NOT NULL,
    asset VARCHAR,
    message TEXT NOT NULL,
    CONSTRAINT pk_run_logs PRIMARY KEY (seq),
    CONSTRAINT fk_run_logs_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
)"""
    )
    op.execute("CREATE INDEX ix_run_logs_run_id_seq ON run_logs (run_id, seq)")


def downgrade() -> None:
    op.drop_table("run_logs")
