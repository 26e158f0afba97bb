"""Regenerate the icons the gateway serves to the web UI (gateway/src/icp_gateway/iconsets/).

The web UI (interloper-app) asks Iconify's public API for its icons at run time. The gateway
points it at its own /api/iconify instead (see icp_gateway/icons.py) and answers from a subset of
the Iconify icon sets, committed to the repository so that `make install` (uv only) needs no
npm and an air-gapped install shows every icon. This script makes that subset:

* the icon names the UI's build references (`i-<set>-<name>`, split by the UI's own list of
  Iconify collections), a few file types its code blocks may show, and the `icon` of every
  catalog component found in the given Python packages (default: the demo catalog and the
  `interloper` package when installed);
* the icon data of those names, from the npm packages `@iconify-json/<set>` (`npm pack`, so it
  needs npm and the npm registry; run it when interloper-app or the catalog changes).

Usage: uv run python scripts/vendor-icons.py [--package NAME ...] [--icon SET:NAME ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "gateway" / "src" / "icp_gateway" / "iconsets"
BUNDLED = {"icon"}  # sets the UI ships inside its build (never asked from the API)
FILE_TYPES = ["json", "sql", "csv", "text", "html", "css", "shell", "toml", "xml", "ini", "log", "java"]
NAME = r"[a-z0-9]+(?:-[a-z0-9]+)*"


def ui_names(static: Path) -> set[tuple[str, str]]:
    """(set, name) of every icon the UI's JavaScript names."""
    code = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(static.rglob("*.js")))
    found = re.search(r"collections:\[([^\]]*)\]", code)
    if found is None:
        sys.exit("no Iconify collection list in the UI build: has interloper-app changed?")
    collections = sorted(json.loads(f"[{found.group(1)}]"), key=len, reverse=True)
    names: set[tuple[str, str]] = set()
    for full in re.findall(rf"[\"'`]i-({NAME})[\"'`]", code):
        prefix = next((c for c in collections if full.startswith(c + "-")), None)
        if prefix is not None:
            names.add((prefix, full[len(prefix) + 1 :]))
    names |= {(c, n) for c, n in re.findall(rf"[\"'`]({NAME}):({NAME})[\"'`]", code) if c in collections}
    names |= {("vscode-icons", f"file-type-{ext}") for ext in FILE_TYPES}  # `i-vscode-icons-file-type-${ext}`
    return names


def catalog_names(packages: list[str]) -> set[tuple[str, str]]:
    """`icon = "set:name"`, `icon: ClassVar[str] = "set:name"`, ... in the catalog packages' sources."""
    names: set[tuple[str, str]] = set()
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            print(f"package {package} not installed: skipped", file=sys.stderr)
            continue
        for location in spec.submodule_search_locations:
            for source in Path(location).rglob("*.py"):
                text = source.read_text(encoding="utf-8", errors="replace")
                names |= set(re.findall(rf"icon\b[^\n\"']{{0,40}}[\"']({NAME}):({NAME})[\"']", text))
    return names


def fetch_set(prefix: str, workdir: Path) -> tuple[str, dict[str, Any]]:
    """`@iconify-json/<prefix>` from npm: (package@version, its icons.json)."""
    package = f"@iconify-json/{prefix}"
    packed = subprocess.run(
        ["npm", "pack", package, "--json", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    )
    meta = json.loads(packed.stdout)[0]
    with tarfile.open(workdir / meta["filename"]) as archive:
        member = archive.extractfile("package/icons.json")
        assert member is not None
        data: dict[str, Any] = json.load(member)
        info = archive.extractfile("package/info.json")  # name, author, licence: kept for attribution
        if info is not None:
            data.setdefault("info", json.load(info))
    return f"{package}@{meta['version']}", data


def subset(data: dict[str, Any], names: set[str]) -> tuple[dict[str, Any], list[str]]:
    icons, aliases, missing = data.get("icons", {}), data.get("aliases", {}), []
    keep_icons: dict[str, Any] = {}
    keep_aliases: dict[str, Any] = {}
    for name in sorted(names):
        while name in aliases and name not in keep_aliases:
            keep_aliases[name] = aliases[name]
            name = aliases[name]["parent"]
        if name in icons:
            keep_icons[name] = icons[name]
        elif name not in keep_aliases:
            missing.append(name)
    out = {
        key: data[key] for key in ("prefix", "info", "lastModified", "width", "height", "left", "top") if key in data
    }
    out["icons"] = keep_icons
    if keep_aliases:
        out["aliases"] = keep_aliases
    return out, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", action="append", help="catalog package to scan (repeatable)")
    parser.add_argument("--icon", action="append", default=[], help="extra icon, as set:name (repeatable)")
    args = parser.parse_args()
    import interloper_app

    names = ui_names(Path(interloper_app.static_dir()))
    names |= catalog_names(args.package or ["icp_pipelines", "interloper"])
    names |= {tuple(icon.split(":", 1)) for icon in args.icon}  # type: ignore[misc]
    by_set: dict[str, set[str]] = {}
    for prefix, name in names:
        if prefix not in BUNDLED:
            by_set.setdefault(prefix, set()).add(name)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        for prefix in sorted(by_set):
            try:
                source, data = fetch_set(prefix, Path(tmp))
            except subprocess.CalledProcessError as exc:
                print(f"{prefix}: no npm package @iconify-json/{prefix} ({exc.stderr.strip()[:200]})", file=sys.stderr)
                continue
            out, missing = subset(data, by_set[prefix])
            out["source"] = source  # not part of any answer: where this subset came from
            (OUT / f"{prefix}.json").write_text(json.dumps(out, sort_keys=True, separators=(",", ":")) + "\n")
            note = f", not in the set: {', '.join(missing)}" if missing else ""
            print(f"{prefix}: {len(out['icons'])} icons from {source}{note}")


if __name__ == "__main__":
    main()
