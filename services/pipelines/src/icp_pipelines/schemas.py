"""Response models shared by several domains."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Deleted(BaseModel):
    """`{"status": "deleted"}`."""

    status: Literal["deleted"] = "deleted"
