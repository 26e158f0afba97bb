"""The `profiles` table."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Uuid, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base


class Profile(Base):
    __tablename__ = "profiles"
    __table_args__ = (Index("ix_profiles_email_lower", text("lower(email)")),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=func.gen_random_uuid())
    email: Mapped[str] = mapped_column(String, nullable=False)
    name: Mapped[str | None] = mapped_column(String)
    # Google's user id; NULL for profiles created by dev login / CreateSession until they use Google.
    google_id: Mapped[str | None] = mapped_column(String, unique=True)
    avatar_url: Mapped[str | None] = mapped_column(String)
    last_organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("organisations.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
