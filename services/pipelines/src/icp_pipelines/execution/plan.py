"""What a run executes (spec 6.1 step 3-4, 7.3): the job's sources, each with its asset rows,
and its standalone assets, as component specs built from the database (resources decrypted),
plus the upstream assets they read from, hydrated as not materializable (read from their
destination, never executed). The child process reconstructs them and builds the DAG."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..assets import repository as assets_repository
from ..assets.models import Asset
from ..catalog.loader import CatalogIndex
from ..crypto import Cipher
from ..hydration.service import CatalogKeyError, Hydrator, Spec
from ..jobs import repository as jobs_repository
from ..oauth.settings import OAuthSettings
from ..sources import repository as sources_repository
from .events import RunRef


class PlanError(Exception):
    """The run cannot be built (job gone, unknown catalog key, ...): it fails with this message."""


async def _source_specs(
    hydrator: Hydrator, session: AsyncSession, org_id: uuid.UUID, rows: Iterable[Asset], *, upstream: bool
) -> list[Spec]:
    by_source: dict[uuid.UUID, list[Asset]] = {}
    for row in rows:
        assert row.source_id is not None
        by_source.setdefault(row.source_id, []).append(row)
    sources = await sources_repository.get_many(session, org_id, by_source)
    specs = []
    for source_id, assets in by_source.items():
        source = sources.get(source_id)
        if source is None:
            continue
        spec = await hydrator.source(source, assets)
        if upstream:
            for init in spec["init"]["assets"].values():
                init["materializable"] = False
        specs.append(spec)
    return specs


async def build(
    session: AsyncSession,
    catalog: CatalogIndex,
    cipher: Cipher,
    run: RunRef,
    oauth: OAuthSettings | None = None,
    secrets: set[str] | None = None,
) -> list[Spec]:
    """The component specs of the run (empty: nothing to execute). Raises PlanError. With `oauth`,
    connections made by the code exchange get the platform's client secret (issue 15). `secrets`
    receives the secret values of the resources it decrypts (masked in the run's logs)."""
    if run.job_id is None:
        raise PlanError("The run's job no longer exists")
    org_id = run.org_id
    hydrator = Hydrator(session, org_id, catalog, cipher, oauth, secrets)
    try:
        source_links, asset_links = await jobs_repository.links(session, org_id, [run.job_id])
        source_ids = source_links.get(run.job_id, [])
        owned = await assets_repository.for_sources(session, org_id, source_ids) if source_ids else {}
        standalone = await assets_repository.get_many(session, org_id, asset_links.get(run.job_id, []))
        job_rows = [row for sid in source_ids for row in owned.get(sid, [])]
        job_rows += [standalone[a] for a in asset_links.get(run.job_id, []) if a in standalone]
        specs = await _components(hydrator, session, org_id, job_rows, upstream=False)
        present = {row.id for row in job_rows}
        missing = _upstream_ids(specs) - present
        if missing:
            ups = await assets_repository.get_many(session, org_id, missing)
            specs += await _components(hydrator, session, org_id, list(ups.values()), upstream=True)
    except CatalogKeyError as exc:
        raise PlanError(str(exc)) from exc
    return specs


async def _components(
    hydrator: Hydrator, session: AsyncSession, org_id: uuid.UUID, rows: list[Asset], *, upstream: bool
) -> list[Spec]:
    specs = await _source_specs(
        hydrator, session, org_id, [r for r in rows if r.source_id is not None], upstream=upstream
    )
    for row in rows:
        if row.source_id is None:
            spec: dict[str, Any] = await hydrator.standalone_asset(row)
            if upstream:
                spec["init"]["materializable"] = False
            specs.append(spec)
    return specs


def _upstream_ids(specs: list[Spec]) -> set[uuid.UUID]:
    """The assets the hydrated ones depend on (their `deps`, already loaded by the hydrator)."""
    inits: list[dict[str, Any]] = []
    for spec in specs:
        assets = spec["init"].get("assets")
        inits.extend(assets.values() if isinstance(assets, dict) else [spec["init"]])
    return {uuid.UUID(str(upstream)) for init in inits for upstream in (init.get("deps") or {}).values()}
