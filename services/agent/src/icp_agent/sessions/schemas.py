"""Session request/response models (spec 9.3)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AgentSessionRead(BaseModel):
    id: str
    user_id: str
    app_name: str
    state: dict[str, Any]
    last_update_time: float
    event_count: int


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=32_000)


class DeletedRead(BaseModel):
    status: str = "deleted"
