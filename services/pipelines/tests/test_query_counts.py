"""No N+1: every list endpoint issues the same number of SQL statements with 1 row as with 100+."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from icp_common.caller import Role, member_of
from icp_pipelines.assets import service as assets_service
from icp_pipelines.destinations import service as destinations_service
from icp_pipelines.jobs import service as jobs_service
from icp_pipelines.resources import service as resources_service
from icp_pipelines.runs import lifecycle
from icp_pipelines.sources import service as sources_service


async def populate(db, app, identity, count: int) -> dict[str, uuid.UUID]:
    catalog, cipher = app.state.catalog, app.state.cipher
    caller = member_of(identity, Role.EDITOR)  # parsed as at the edge
    org_id = caller.org_id
    async with db() as s:
        for i in range(count):
            config = await resources_service.create(
                s, caller, catalog, cipher, kind="config", key="demo_config", name=f"c{i}", data={}, encrypted=False
            )
            dest = await destinations_service.create(
                s, caller, catalog, key="demo_csv_destination", name=f"d{i}", config=None, resources=None
            )
            source = await sources_service.create(
                s,
                caller,
                catalog,
                key="demo_source",
                name=f"s{i}",
                resources={"config": config.id},
                destination_ids=[dest.id],
            )
            asset = await assets_service.create(
                s, caller, catalog, key="demo_ping", config=None, resources=None, destination_ids=[dest.id]
            )
            await assets_service.add_dependency(s, caller, asset.id, source.assets[0].id, "events")
            job = await jobs_service.create(
                s, caller, name=f"j{i}", cron="* * * * *", source_ids=[source.id], asset_ids=[asset.id]
            )
            await jobs_service.trigger_run(s, caller, job.id, None)
            await lifecycle.create_backfill(s, org_id, job.id, start_date=date(2024, 1, 1), end_date=date(2024, 1, 1))
        backfill = await lifecycle.create_backfill(
            s, org_id, job.id, start_date=date(2024, 1, 1), end_date=date(2024, 1, 1) + timedelta(days=count - 1)
        )
        run = await jobs_service.trigger_run(s, caller, job.id, None)
        await lifecycle.insert_events(
            s,
            [
                {
                    "org_id": org_id,
                    "run_id": run.id,
                    "event_type": "asset_started",
                    "asset_id": uuid.uuid4(),
                    "asset_key": f"a{i}",
                }
                for i in range(count)
            ],
        )
    return {"run": run.id, "backfill": backfill.id}


LISTS = [
    "/api/resources/",
    "/api/sources/",
    "/api/destinations/",
    "/api/assets/",
    "/api/assets/dependencies",
    "/api/jobs/",
    "/api/runs/?limit=500",
    "/api/backfills/",
    "/api/runs/{run}/events",
    "/api/runs/{run}/asset-executions",
    "/api/runs/?backfill_id={backfill}",
]


async def measure(clients, count_queries, ids) -> dict[str, tuple[int, int]]:
    result = {}
    for path in LISTS:
        url = path.format(**ids)
        with count_queries() as counter:
            r = await clients.viewer.get(url)
        assert r.status_code == 200, r.text
        result[path] = (counter.count, len(r.json()))
    return result


async def test_list_query_counts_do_not_grow_with_rows(clients, db, app, world, count_queries, engine):
    small = await measure(clients, count_queries, await populate(db, app, world.editor, 1))
    from sqlalchemy import text

    async with engine.begin() as conn:
        await conn.execute(
            text("TRUNCATE resources, sources, destinations, jobs, runs, backfills, events, assets, outbox CASCADE")
        )
    large = await measure(clients, count_queries, await populate(db, app, world.editor, 100))
    for path in LISTS:
        assert large[path][0] == small[path][0], (path, small[path], large[path])
        assert large[path][1] >= 100, (path, large[path])
        assert small[path][0] <= 8, (path, small[path])
    print({path: counts[0] for path, counts in small.items()})
