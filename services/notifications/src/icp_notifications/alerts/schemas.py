"""The alert rules document of `GET/PUT /api/organisations/{id}/alerts`.

    {"rules": [{"id": "<uuid, assigned when omitted>",
                "on": "run_failed" | "backfill_failed" | "run_stuck",
                "stuck_minutes": <only (and required) with run_stuck: one of 5, 10, 15, 30, 45,
                                  60, 90, 120, 180, 240, 360, 480, 720, 1440>,
                "jobs": null (all jobs) | ["<job uuid>", ...],
                "email": ["ops@example.com", ...],
                "webhooks": [{"url": "https://...", "format": "json" | "slack",
                              "secret": "<json: HMAC key, >= 16 chars>"}]}]}

Unknown fields are refused (422). A webhook secret is write-only: GET shows `"secret_set": true`
instead, and a PUT that omits the secret of a webhook keeps the secret stored for the same URL."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from icp_common.contracts import STUCK_MINUTES

from ..invitations.rendering import InvalidMessage, recipient_address

MAX_RECIPIENTS = 20
MAX_WEBHOOKS = 10
MAX_JOBS = 500


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Webhook(_Strict):
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    format: Literal["json", "slack"] = "json"
    secret: Annotated[str | None, Field(min_length=16, max_length=256)] = None
    secret_set: bool | None = None  # read-only (GET); accepted and ignored on PUT (round trip)


class Rule(_Strict):
    id: uuid.UUID | None = None
    on: Literal["run_failed", "backfill_failed", "run_stuck"]
    stuck_minutes: Annotated[int | None, Field(ge=1, le=7 * 24 * 60)] = None
    jobs: Annotated[list[uuid.UUID] | None, Field(max_length=MAX_JOBS)] = None
    email: Annotated[list[str], Field(max_length=MAX_RECIPIENTS)] = []
    webhooks: Annotated[list[Webhook], Field(max_length=MAX_WEBHOOKS)] = []

    @field_validator("email")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                recipient_address(address)
            except InvalidMessage as exc:
                raise ValueError(str(exc)) from exc
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.on == "run_stuck" and self.stuck_minutes is None:
            raise ValueError("stuck_minutes is required with on=run_stuck")
        if self.on != "run_stuck" and self.stuck_minutes is not None:
            raise ValueError("stuck_minutes is only allowed with on=run_stuck")
        if self.stuck_minutes is not None and self.stuck_minutes not in STUCK_MINUTES:
            raise ValueError(f"stuck_minutes must be one of {', '.join(map(str, STUCK_MINUTES))}")
        if not self.email and not self.webhooks:
            raise ValueError("a rule needs at least one e-mail address or webhook")
        return self


class AlertRulesDocument(_Strict):
    rules: list[Rule]
