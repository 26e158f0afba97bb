"""py-spy profiles of our Python services under load: collapsed stacks (`--format raw`), rendered
as flame graph SVGs here and summarised (where the on-CPU samples go, by own frame and by package)."""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import zlib
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    return shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path, rate: int = 97, *, subprocesses: bool = False) -> Path | None:
    exe = py_spy()
    if exe is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        exe,
        "record",
        *(["--subprocesses"] if subprocesses else []),
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(rate),
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"py-spy failed for pid {pid}: {err.decode(errors='replace')[-300:]}")
    return out


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


EVENT_LOOP = "Runner.run (asyncio/runners.py)"


def _package(frame: str) -> str:
    """py-spy names files relative to their sys.path entry: `icp_gateway/app.py`, `asyncio/runners.py`."""
    m = _FRAME.match(frame)
    file = m.group("file") if m else frame
    if "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    head = file.split("/", 1)[0] if "/" in file else file.removesuffix(".py")
    return head or "?"


def _func(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m.group("file")
    short = "/".join(file.split("/")[-2:])
    return f"{m.group('func')} ({short})"


CATEGORIES = [
    ("log records (logging handlers and the listener thread)", ("logging",)),
    ("SQL (sqlalchemy, asyncpg)", ("sqlalchemy", "asyncpg")),
    ("gRPC", ("grpc", "grpc_status", "google")),
    ("validation and JSON (pydantic, json)", ("pydantic", "pydantic_core", "json", "orjson")),
    ("HTTP server (uvicorn, starlette, fastapi)", ("uvicorn", "starlette", "fastapi", "httptools", "h11")),
    ("HTTP client (aiohttp, httpx)", ("aiohttp", "httpx", "httpcore", "yarl", "multidict")),
    ("NATS", ("nats",)),
    ("our code (icp_*)", ("icp_gateway", "icp_identity", "icp_pipelines", "icp_common", "icp_agent")),
]


def _category(frames: list[str]) -> str:
    leaf = _func(frames[-1]) if frames else "?"
    if leaf == EVENT_LOOP:
        return "event loop / native code (uvloop, sockets, C extensions)"
    if any("QueueListener" in f for f in frames):
        return "log records (logging handlers and the listener thread)"
    if any(f.startswith("WorkerThread.run (anyio/") for f in frames) and _package(frames[-1]) in (
        "threading",
        "queue",
    ):
        return "thread pool hand-offs (anyio worker threads: sync FastAPI dependencies)"
    package = _package(frames[-1])
    for name, packages in CATEGORIES:
        if package in packages:
            return name
    return f"other ({package})"


def summarise(path: Path, top: int = 12) -> dict[str, Any]:
    """Own time (the sampled leaf frame) by category, package and function. A leaf in the event
    loop's `run` itself is time in native code under it: uvloop, sockets, gRPC's core, drivers'
    C parts."""
    stacks = parse(path)
    total = sum(c for _, c in stacks)
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for frames, count in stacks:
        leaf = _func(frames[-1]) if frames else "?"
        native = leaf == EVENT_LOOP
        own["event loop / native code" if native else leaf] += count
        packages["(native, under the event loop)" if native else _package(frames[-1])] += count
        categories[_category(frames)] += count

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    folded: Counter[str] = Counter()
    for name, n in categories.items():
        folded["other" if name.startswith("other (") and pct(n) < 2 else name] += n
    categories = folded
    return {
        "samples": total,
        "categories": [{"category": k, "pct": pct(n)} for k, n in categories.most_common()],
        "own_frames": [{"frame": f, "pct": pct(n)} for f, n in own.most_common(top)],
        "packages": [{"package": p, "pct": pct(n)} for p, n in packages.most_common(top)],
    }


def flamegraph_svg(path: Path, out: Path, title: str, width: int = 1400, row: int = 16) -> Path:
    """A plain flame graph (root at the bottom) of collapsed stacks; hover a box for its samples."""
    tree: dict[str, Any] = {"n": 0, "c": {}}
    for frames, count in parse(path):
        node = tree
        node["n"] += count
        for f in frames:
            node = node["c"].setdefault(f, {"n": 0, "c": {}})
            node["n"] += count
    total = tree["n"] or 1
    depth_max = 0
    boxes: list[tuple[int, float, float, str, int]] = []

    def walk(node: dict[str, Any], depth: int, x: float) -> None:
        nonlocal depth_max
        for name, child in sorted(node["c"].items()):
            w = child["n"] / total * width
            if w >= 0.5:
                boxes.append((depth, x, w, name, child["n"]))
                depth_max = max(depth_max, depth)
                walk(child, depth + 1, x)
            x += w

    walk(tree, 0, 0.0)
    height = (depth_max + 3) * row + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="monospace" font-size="11">',
        f'<rect width="100%" height="100%" fill="#fdfdf6"/><text x="6" y="18" font-size="14">{html.escape(title)}'
        f" ({total} samples)</text>",
    ]
    for depth, x, w, name, n in boxes:
        y = height - (depth + 1) * row - 4
        hue = 10 + (zlib.crc32(_package(name).encode()) % 50)
        label = _func(name)
        chars = int(w / 6.6)
        text = html.escape(label[:chars] if chars >= 4 else "")
        parts.append(
            f"<g><title>{html.escape(label)}: {n} samples ({100 * n / total:.1f}%)</title>"
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="hsl({hue},80%,62%)"/>'
            f'<text x="{x + 2:.1f}" y="{y + row - 4}">{text}</text></g>'
        )
    parts.append("</svg>")
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
