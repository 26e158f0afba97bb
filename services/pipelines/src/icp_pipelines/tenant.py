"""The organisation catalog code is running for, for catalog components that keep tenants apart
(the demo CSV destination's per-organisation directory).

A run process serves one organisation (execution/child.py sets `ORG_ENV` for the whole process,
threads of the runner included); the API, which serves every organisation, sets it per call with
`acting_for` around the catalog code it runs in-process (partition row counts)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

ORG_ENV = "INTERLOPER_RUN_ORG_ID"
_org: ContextVar[str | None] = ContextVar("icp_pipelines_tenant", default=None)


def current_org() -> str | None:
    return _org.get() or os.environ.get(ORG_ENV) or None


@contextmanager
def acting_for(org_id: object) -> Iterator[None]:
    token = _org.set(str(org_id))
    try:
        yield
    finally:
        _org.reset(token)
