"""Response models shared by several domains."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Status(BaseModel):
    """`{"status": "ok"}`."""

    status: Literal["ok"] = "ok"
