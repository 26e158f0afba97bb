"""The web UI's icons from our origin: the asset rewrite and the Iconify-format answers.
(Through Traefik: tests-e2e/test_web_icons.py; drawn in a browser: tests-e2e/browser.)"""

from __future__ import annotations

import json
from pathlib import Path

from icp_gateway.icons import IconSets, local_icon_assets


def test_only_the_public_api_literals_are_rewritten_and_the_files_stay(tmp_path: Path) -> None:
    nuxt = tmp_path / "_nuxt"
    nuxt.mkdir()
    entry = nuxt / "entry.js"
    original = (
        b'a={iconifyApiEndpoint:"https://api.iconify.design"};b=["https://api.simplesvg.com"];c="api.iconify.design"'
    )
    entry.write_bytes(original)
    (nuxt / "other.js").write_bytes(b"nothing to see")
    rewritten = local_icon_assets(tmp_path)
    assert list(rewritten) == [entry.resolve()]
    assert (
        rewritten[entry.resolve()] == b'a={iconifyApiEndpoint:"/api/iconify"};b=["/api/iconify"];c="api.iconify.design"'
    )
    assert entry.read_bytes() == original


def test_answers_resolve_aliases_and_an_operator_directory_comes_first(tmp_path: Path) -> None:
    full = {
        "prefix": "lucide",
        "width": 24,
        "height": 24,
        "icons": {"circle-check": {"body": "<path d='own'/>"}},
        "aliases": {"check-circle": {"parent": "circle-check"}, "tick": {"parent": "check-circle"}},
    }
    (tmp_path / "lucide.json").write_text(json.dumps(full))
    answer = IconSets(tmp_path).answer("lucide", ["tick", "nope"])
    assert answer == {
        "prefix": "lucide",
        "width": 24,
        "height": 24,
        "icons": {"circle-check": {"body": "<path d='own'/>"}},
        "aliases": {"tick": {"parent": "check-circle"}, "check-circle": {"parent": "circle-check"}},
        "not_found": ["nope"],
    }
    built_in = IconSets().answer("lucide", ["plus"])
    assert built_in is not None and "<path" in built_in["icons"]["plus"]["body"]
    assert IconSets(tmp_path).answer("no-such-set", ["a"]) is None
