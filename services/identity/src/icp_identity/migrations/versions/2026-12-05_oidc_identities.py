"""oidc_identities: OpenID Connect sign-in identities (issuer, subject) linked to profiles

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oidc_identities",
        sa.Column("id", sa.Uuid(), nullable=False, server_default=sa.func.gen_random_uuid()),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("email_verified", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_oidc_identities"),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name="fk_oidc_identities_profile_id_profiles", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("issuer", "subject", name="uq_oidc_identities_issuer"),
    )
    op.create_index("ix_oidc_identities_profile_id", "oidc_identities", ["profile_id"])


def downgrade() -> None:
    op.drop_table("oidc_identities")
