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


async def test_counts_from_the_source_destination(clients, tmp_path):
    config = await create_resource(clients.editor)
    dest = await create_destination(clients.editor, config={"base_path": str(tmp_path)})
    source = await create_source(
        clients.editor, resources={"config": config["id"]}, destination_ids=[dest["id"]], config={"dataset": "demo"}
    )
    ids = {a["key"]: a["id"] for a in source["assets"]}
    r = await clients.viewer.get(f"/api/assets/{ids['events']}/partition-row-counts")
    assert (r.status_code, r.json()) == (200, {"asset_key": "events", "partition_column": "date", "counts": []})
    write_partition(tmp_path, "demo", "events", "2024-01-02", 3)
    write_partition(tmp_path, "demo", "events", "2024-01-01", 5)
    r = await clients.viewer.get(f"/api/assets/{ids['events']}/partition-row-counts")
    assert r.json() == {
        "asset_key": "events",
        "partition_column": "date",
        "counts": [{"partition": "2024-01-01", "row_count": 5}, {"partition": "2024-01-02", "row_count": 3}],
    }
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
