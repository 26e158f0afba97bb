"""`GET /api/assets/{id}/partition-row-counts` against the demo CSV destination on disk."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

from ..factories import create_destination, create_resource, create_source, create_standalone_asset


def write_partition(base: Path, dataset: str, asset: str, day: str, rows: int) -> None:
    folder = base / dataset / asset / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["date", "n"])
        writer.writeheader()
        writer.writerows({"date": day, "n": i} for i in range(rows))


async def demo_source(client):
    config = await create_resource(client)
    dest = await create_destination(client, config={"base_path": "rc"})
    source = await create_source(
        client, resources={"config": config["id"]}, destination_ids=[dest["id"]], config={"dataset": "demo"}
    )
    return {a["key"]: a["id"] for a in source["assets"]}


async def test_counts_from_the_source_destination(clients, world, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERLOPER_DATA_DIR", str(tmp_path))
    ids = await demo_source(clients.editor)
    other_ids = await demo_source(clients.other_org)  # same base_path, another organisation
    r = await clients.viewer.get(f"/api/assets/{ids['events']}/partition-row-counts")
    assert (r.status_code, r.json()) == (200, {"asset_key": "events", "partition_column": "date", "counts": []})
    mine = tmp_path / "demo-output" / str(world.org_a) / "rc"  # the organisation's own directory
    write_partition(mine, "demo", "events", "2024-01-02", 3)
    write_partition(mine, "demo", "events", "2024-01-01", 5)
    r = await clients.viewer.get(f"/api/assets/{ids['events']}/partition-row-counts")
    assert r.json() == {
        "asset_key": "events",
        "partition_column": "date",
        "counts": [{"partition": "2024-01-01", "row_count": 5}, {"partition": "2024-01-02", "row_count": 3}],
    }
    r = await clients.other_org.get(f"/api/assets/{other_ids['events']}/partition-row-counts")
    assert r.json()["counts"] == []  # never the first organisation's files
    r = await clients.viewer.get(f"/api/assets/{ids['users']}/partition-row-counts")
    assert (r.status_code, r.json()) == (400, {"detail": "Asset is not partitioned"})


async def test_no_destination_is_404(clients):
    source = await create_source(clients.editor, asset_keys=["events"])
    asset_id = source["assets"][0]["id"]
    r = await clients.viewer.get(f"/api/assets/{asset_id}/partition-row-counts")
    assert (r.status_code, r.json()) == (404, {"detail": "No destinations found for asset 'events'"})


async def test_unknown_and_foreign(clients):
    asset = await create_standalone_asset(clients.editor)
    r = await clients.other_org.get(f"/api/assets/{asset['id']}/partition-row-counts")
    assert (r.status_code, r.json()) == (404, {"detail": f"Asset {asset['id']} not found"})
    missing = uuid.uuid4()
    r = await clients.viewer.get(f"/api/assets/{missing}/partition-row-counts")
    assert (r.status_code, r.json()) == (404, {"detail": f"Asset {missing} not found"})
    r = await clients.viewer.get(f"/api/assets/{asset['id']}/partition-row-counts")
    assert (r.status_code, r.json()) == (400, {"detail": "Asset is not partitioned"})
