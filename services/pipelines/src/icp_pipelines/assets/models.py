"""The `assets` table (source-owned rows and standalone assets), their bindings, and the
dependency edges between assets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (
        Index("ix_assets_org_id", "org_id"),
        Index("uq_assets_source_id_key", "source_id", "key", unique=True),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=func.gen_random_uuid())
    source_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("sources.id", ondelete="CASCADE"), nullable=True
    )
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    key: Mapped[str] = mapped_column(String, nullable=False)
    materializable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    # clock_timestamp(): rows inserted together keep their (catalog) order
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class AssetResource(Base):
    __tablename__ = "asset_resources"
    __table_args__ = (Index("ix_asset_resources_resource_id", "resource_id"),)

    asset_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    slot: Mapped[str] = mapped_column(String, primary_key=True)
    resource_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("resources.id", ondelete="CASCADE"), nullable=False)


class AssetDestination(Base):
    __tablename__ = "asset_destinations"
    __table_args__ = (Index("ix_asset_destinations_destination_id", "destination_id"),)

    asset_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    destination_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("destinations.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class AssetDependency(Base):
    """`asset_id` (downstream) reads the data of `upstream_asset_id` through its `param_name`."""

    __tablename__ = "asset_dependencies"
    __table_args__ = (Index("ix_asset_dependencies_upstream_asset_id", "upstream_asset_id"),)

    asset_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    upstream_asset_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    param_name: Mapped[str] = mapped_column(String, primary_key=True)
