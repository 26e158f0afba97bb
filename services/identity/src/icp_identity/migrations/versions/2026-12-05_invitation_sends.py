"""invitation_sends: when each invitation e-mail was sent (rate limits per organisation and address)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invitation_sends",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_invitation_sends"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name="fk_invitation_sends_organisation_id_organisations",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_invitation_sends_organisation_id", "invitation_sends", ["organisation_id", "created_at"])
    op.create_index("ix_invitation_sends_email", "invitation_sends", ["email", "created_at"])


def downgrade() -> None:
    op.drop_table("invitation_sends")
