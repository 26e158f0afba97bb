"""auth tables: profiles, organisations, memberships, sessions, invitations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_UUID_PK = {"primary_key": True, "server_default": sa.text("gen_random_uuid()")}
_ROLE_CHECK = "role IN ('viewer', 'editor', 'admin')"


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.Uuid(), **_UUID_PK),
        sa.Column("name", sa.String(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_organisations"),
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.Uuid(), **_UUID_PK),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("google_id", sa.String(), nullable=True),
        sa.Column("avatar_url", sa.String(), nullable=True),
        sa.Column("last_organisation_id", sa.Uuid(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_profiles"),
        sa.UniqueConstraint("google_id", name="uq_profiles_google_id"),
        sa.ForeignKeyConstraint(
            ["last_organisation_id"],
            ["organisations.id"],
            name="fk_profiles_last_organisation_id_organisations",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_profiles_email_lower", "profiles", [sa.text("lower(email)")])
    op.create_table(
        "memberships",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("organisation_id", "user_id", name="pk_memberships"),
        sa.CheckConstraint(_ROLE_CHECK, name="ck_memberships_role"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name="fk_memberships_organisation_id_organisations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["profiles.id"], name="fk_memberships_user_id_profiles", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), **_UUID_PK),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_sessions_token_hash"),
        sa.ForeignKeyConstraint(["user_id"], ["profiles.id"], name="fk_sessions_user_id_profiles", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name="fk_sessions_organisation_id_organisations",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "invitations",
        sa.Column("id", sa.Uuid(), **_UUID_PK),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("invited_by", sa.Uuid(), nullable=False),
        _created_at(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_invitations"),
        sa.UniqueConstraint("token_hash", name="uq_invitations_token_hash"),
        sa.CheckConstraint(_ROLE_CHECK, name="ck_invitations_role"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name="fk_invitations_organisation_id_organisations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"], ["profiles.id"], name="fk_invitations_invited_by_profiles", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_invitations_organisation_id", "invitations", ["organisation_id"])


def downgrade() -> None:
    op.drop_table("invitations")
    op.drop_table("sessions")
    op.drop_table("memberships")
    op.drop_table("profiles")
    op.drop_table("organisations")
