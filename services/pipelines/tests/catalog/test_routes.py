"""`/api/catalog`, `/api/specs`, `/api/resources/kinds` (spec 2.6, 2.7, 7; web UI contract 1)."""

from __future__ import annotations

from icp_pipelines.catalog.loader import load_catalog
from icp_pipelines.demo import CATALOG_PATHS

TOP_LEVEL = {
    "demo_source",
    "demo_config",
    "demo_ads",
    "demo_ads_connection",
    "demo_csv_destination",
    "demo_ping",
    "demo_live",
}


async def test_catalog_dump_without_authentication(clients):
    r = await clients.anonymous.get("/api/catalog/")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == TOP_LEVEL
    source = body["demo_source"]
    assert set(source) == {
        "kind",
        "key",
        "path",
        "name",
        "icon",
        "description",
        "tags",
        "resources",
        "config_schema",
        "destinations",
        "assets",
    }
    assert source["resources"] == {"config": "demo_config"}
    assert source["destinations"] == ["demo_csv_destination"]
    assert source["config_schema"]["properties"]["dataset"]["default"] == "demo_source"
    events = next(a for a in source["assets"] if a["key"] == "events")
    assert events["partitioning"] == {"column": "date", "allow_window": False, "start_date": None}
    assert events["path"] == "icp_pipelines.demo.components:DemoSource.events"
    summary = next(a for a in source["assets"] if a["key"] == "daily_summary")
    assert summary["requires"] == {"events": "demo_source.events"}
    connection = body["demo_ads_connection"]
    assert connection["kind"] == "connection" and connection["provider"] == "google"
    assert connection["config_schema"]["x-oauth"]["fields"] == {
        "client_id": "client_id",
        "client_secret": "client_secret",
        "refresh_token": "refresh_token",
    }
    # Framework fields do not leak into UI schemas (spec 12 #28).
    assert "id" not in connection["config_schema"]["properties"]
    assert "id" not in body["demo_csv_destination"]["config_schema"]["properties"]


async def test_specs_is_the_catalog_with_and_without_slash(clients):
    catalog = (await clients.anonymous.get("/api/catalog/")).json()
    for path in ("/api/specs", "/api/specs/"):
        r = await clients.viewer.get(path)
        assert r.status_code == 200
        assert r.json() == catalog


async def test_catalog_entry_and_unknown_key(clients):
    r = await clients.anonymous.get("/api/catalog/demo_ping")
    assert r.status_code == 200
    assert r.json()["kind"] == "asset" and r.json()["source_key"] == ""
    r = await clients.anonymous.get("/api/catalog/nope")
    assert (r.status_code, r.json()) == (404, {"detail": "Component 'nope' not found in catalog"})
    r = await clients.anonymous.get("/api/catalog/kind")
    assert (r.status_code, r.json()) == (404, {"detail": "Component 'kind' not found in catalog"})


async def test_catalog_by_kind(clients):
    r = await clients.anonymous.get("/api/catalog/kind/connection")
    assert r.status_code == 200 and set(r.json()) == {"demo_ads_connection"}
    r = await clients.anonymous.get("/api/catalog/kind/source")
    assert set(r.json()) == {"demo_source", "demo_ads", "demo_live"}
    r = await clients.anonymous.get("/api/catalog/kind/bogus")
    assert (r.status_code, r.json()) == (200, {})


async def test_resource_kinds(clients):
    r = await clients.anonymous.get("/api/resources/kinds")
    assert (r.status_code, r.json()) == (200, ["config", "connection"])


async def test_catalog_answers_without_slash(clients):
    bare, slashed = await clients.anonymous.get("/api/catalog"), await clients.anonymous.get("/api/catalog/")
    assert (bare.status_code, slashed.status_code) == (200, 200) and bare.json() == slashed.json()


async def test_import_errors_are_reported_by_readyz_without_failing(clients):
    r = await clients.anonymous.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "degraded"
    assert body["checks"]["catalog"] is False
    assert body["catalog_errors"] == {"nope_module.Missing": "ModuleNotFoundError: No module named 'nope_module'"}


def test_loader_reports_every_kind_of_bad_path():
    index = load_catalog([*CATALOG_PATHS, "os.path", "icp_pipelines.demo.NotThere"])
    assert set(index.dump) == TOP_LEVEL
    assert index.errors == {
        "os.path": "not an interloper component class (Source, Asset, Destination or Resource)",
        "icp_pipelines.demo.NotThere": "AttributeError: module 'icp_pipelines.demo' has no attribute 'NotThere'",
    }


async def test_catalog_is_built_once(clients, monkeypatch):
    """The dump is serialised at start-up; requests only hand out the prebuilt bytes."""
    from interloper.catalog import Catalog

    def boom(*args, **kwargs):  # pragma: no cover - must not be called
        raise AssertionError("catalog rebuilt per request")

    monkeypatch.setattr(Catalog, "dump", boom)
    monkeypatch.setattr(Catalog, "from_paths", boom)
    for path in (
        "/api/catalog/",
        "/api/specs",
        "/api/catalog/demo_source",
        "/api/catalog/kind/source",
        "/api/resources/kinds",
    ):
        assert (await clients.anonymous.get(path)).status_code == 200
