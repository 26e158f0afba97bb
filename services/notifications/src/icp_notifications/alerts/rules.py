"""Reading and replacing an organisation's alert rules (flush, never commit)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .models import AlertRules
from .schemas import AlertRulesDocument, Rule
from .targets import TargetRefused, check_url


async def load(session: AsyncSession, org_id: uuid.UUID) -> list[Rule]:
    """The stored rules (secrets included: for delivery, never for a response)."""
    stored = await session.scalar(select(AlertRules.rules).where(AlertRules.org_id == org_id))
    return [Rule.model_validate(r) for r in stored or []]


def public(rules: list[Rule]) -> dict[str, Any]:
    """The document as GET shows it: secrets replaced by `secret_set`."""
    out = []
    for rule in rules:
        data = rule.model_dump(mode="json")
        for hook in data["webhooks"]:
            hook["secret_set"] = bool(hook.pop("secret", None))
        out.append(data)
    return {"rules": out}


def refused_urls(document: AlertRulesDocument, *, allow_private: bool) -> list[dict[str, Any]]:
    """422 items (FastAPI's shape) for webhook URLs that may not be called."""
    errors: list[dict[str, Any]] = []
    for i, rule in enumerate(document.rules):
        for j, hook in enumerate(rule.webhooks):
            try:
                check_url(hook.url, allow_private=allow_private)
            except TargetRefused as exc:
                errors.append(
                    {
                        "type": "url_refused",
                        "loc": ["body", "rules", i, "webhooks", j, "url"],
                        "msg": f"Webhook URL refused: {exc}",
                        "input": hook.url,
                    }
                )
    return errors


async def replace(
    session: AsyncSession, org_id: uuid.UUID, document: AlertRulesDocument, user_id: uuid.UUID | None
) -> list[Rule]:
    """Store `document` as the organisation's rules: ids assigned, omitted secrets kept (same URL)."""
    await session.execute(
        insert(AlertRules).values(org_id=org_id, rules=[]).on_conflict_do_nothing(index_elements=[AlertRules.org_id])
    )
    row = await session.scalar(select(AlertRules).where(AlertRules.org_id == org_id).with_for_update())
    assert row is not None
    kept = {h.url: h.secret for r in (Rule.model_validate(x) for x in row.rules) for h in r.webhooks if h.secret}
    rules: list[Rule] = []
    for rule in document.rules:
        hooks = [
            h.model_copy(update={"secret": h.secret or kept.get(h.url), "secret_set": None}) for h in rule.webhooks
        ]
        rules.append(rule.model_copy(update={"id": rule.id or uuid.uuid4(), "webhooks": hooks}))
    row.rules = [r.model_dump(mode="json", exclude_none=False) for r in rules]
    row.updated_by = user_id
    row.updated_at = func.now()  # type: ignore[assignment]
    await session.flush()
    return rules
