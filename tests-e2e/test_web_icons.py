"""The web UI's icons through Traefik: from our own origin, never from Iconify's public API
(self-hosted, air-gapped installs). The browser test (browser/test_web_ui.py) sees them drawn."""

from __future__ import annotations

from pathlib import Path

import httpx
import interloper_app

PUBLIC_ICON_APIS = ("api.iconify.design", "api.simplesvg.com", "api.unisvg.com")


def test_the_ui_asks_our_origin_for_its_icons(api: httpx.Client) -> None:
    static = Path(interloper_app.static_dir())
    scripts = sorted((static / "_nuxt").glob("*.js"))
    on_disk = [p for p in scripts if any(host.encode() in p.read_bytes() for host in PUBLIC_ICON_APIS)]
    assert on_disk, "the UI package no longer names Iconify's API: revisit icp_gateway/icons.py"
    for script in scripts:
        response = api.get(f"/_nuxt/{script.name}")
        assert response.status_code == 200, script.name
        served = response.text
        assert not [host for host in PUBLIC_ICON_APIS if host in served], script.name
        if script in on_disk:
            assert '"/api/iconify"' in served
    # The package on disk is left as it was.
    assert all(any(host.encode() in p.read_bytes() for host in PUBLIC_ICON_APIS) for p in on_disk)


def test_icon_data_in_the_iconify_api_format(api: httpx.Client) -> None:
    response = api.get("/api/iconify/lucide.json", params={"icons": "plus,circle-check,no-such-icon"})
    assert response.status_code == 200
    body = response.json()
    assert body["prefix"] == "lucide"
    assert set(body["icons"]) == {"plus", "circle-check"} and "<path" in body["icons"]["plus"]["body"]
    assert body["not_found"] == ["no-such-icon"]
    # The demo catalog's icons (shown on its cards) are there too.
    assert "google" in api.get("/api/iconify/devicon.json", params={"icons": "google"}).json()["icons"]


def test_icon_requests_are_checked(api: httpx.Client) -> None:
    assert api.get("/api/iconify/no-such-set.json", params={"icons": "a"}).status_code == 404
    for path in ("/api/iconify/..%2Fapp.json", "/api/iconify/lucide.txt", "/api/iconify/Lucide.json"):
        assert api.get(path, params={"icons": "plus"}).status_code == 404, path
    bad = api.get("/api/iconify/lucide.json", params={"icons": "plus,<script>"})
    assert bad.status_code == 400 and "detail" in bad.json()
    many = api.get("/api/iconify/lucide.json", params={"icons": ",".join(f"i{n}" for n in range(501))})
    assert many.status_code == 400
