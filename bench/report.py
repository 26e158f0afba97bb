"""The report of one run: Markdown (ours, reference, ratio per scenario; targets; where the time
goes) and PNG plots (matplotlib, Agg backend; skipped when matplotlib is not installed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.config import AUTHENTICATED_READS, ENDPOINTS

SERVICES = ("identity", "pipelines", "pipelines-scheduler", "pipelines-worker", "notifications", "agent", "gateway")
RSS_LIMIT_MB = {"agent": 400.0}
RSS_DEFAULT_LIMIT_MB = 150.0
# Our realtime rounds: with our worker executing the runs, and with it held (the reference's API
# executes nothing: the issue compares the APIs alone).
REALTIME_KINDS = {"ours-api": "API only, as the reference", "ours": "our worker executing the runs"}


def _folded(per: dict[str, float]) -> dict[str, float]:
    """Replicas (`gateway-2`, `pipelines-worker-3`: --replicas) added to their service's column."""
    out: dict[str, float] = {}
    for comp, v in per.items():
        base, _, index = comp.rpartition("-")
        key = base if index.isdigit() and base in SERVICES else comp
        out[key] = out.get(key, 0.0) + v
    return out


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "-"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def _ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return None
    return a / b


def _rx(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**not met**")


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of the issue with where we stand (goals, never assertions)."""
    out: list[dict[str, Any]] = []
    http = result.get("http", {})
    for name in AUTHENTICATED_READS:
        cell = http.get(name, {}).get("32", {})
        ours, ref = cell.get("ours"), cell.get("reference")
        if not ours or not ref:
            out.append({"goal": f"{name} c=32: ≥ 1.5x req/s and p99 ≤ reference", "value": "not measured", "ok": None})
            continue
        rps = _ratio(ours["rps"], ref["rps"])
        ok = rps is not None and rps >= 1.5 and ours["p99_ms"] <= ref["p99_ms"]
        out.append(
            {
                "goal": f"GET {name} c=32: ≥ 1.5x the reference's req/s and p99 ≤ its p99",
                "value": f"{_rx(rps)} req/s; p99 {_f(ours['p99_ms'])} vs {_f(ref['p99_ms'])} ms",
                "ok": ok,
            }
        )
    for name in AUTHENTICATED_READS:
        ours, ref = (http.get(name, {}).get("1", {}).get(k) for k in ("ours", "reference"))
        if ours and ref:
            rps = _ratio(ours["rps"], ref["rps"])
            out.append(
                {
                    "goal": f"GET {name} c=1: ≥ 1.0x the reference's req/s",
                    "value": f"{_rx(rps)} req/s",
                    "ok": rps is not None and rps >= 1.0,
                }
            )
    for name, c, floor in (("run-api", "32", 1.5), ("run-api", "1", 1.0), ("run", "32", 1.5), ("run", "1", 1.0)):
        ours, ref = (http.get(name, {}).get(c, {}).get(k) for k in ("ours", "reference"))
        if ours and ref:
            rps = _ratio(ours["rps"], ref["rps"])
            what = "API only" if name == "run-api" else "our worker executing the runs"
            out.append(
                {
                    "goal": f"POST run c={c} ({what}): ≥ {floor:.1f}x the reference's req/s",
                    "value": f"{_rx(rps)} req/s",
                    "ok": rps is not None and rps >= floor,
                }
            )
    for label, cell in result.get("realtime", {}).items():
        ref = cell.get("reference") or {}
        sockets = f"{label} socket{'s' if label != '1' else ''} open"
        for key in REALTIME_KINDS:
            ours = cell.get(key)
            if key == "ours-api" and label == "1":  # the issue: ≤ the reference's p99 with one socket
                limit, bound = ref.get("p99_ms"), "the reference's"
            else:
                limit, bound = 50.0, "50 ms"
            if not ours and key == "ours-api":
                continue  # a result from before the API-only round existed
            ok = None
            if ours:
                p99 = ours["p99_ms"]
                ok = p99 is not None and limit is not None and p99 <= limit and not ours["lost"]
            shown = f"{_f(ours.get('p99_ms'))} ms" if ours else "not measured"
            if ours and key == "ours-api":
                shown += f" vs {_f(limit)} ms"
            out.append({"goal": f"realtime p99 ≤ {bound} ({sockets}, {REALTIME_KINDS[key]})", "value": shown, "ok": ok})
    pick = result.get("execution", {}).get("pickup", {}).get("ours")
    out.append(
        {
            "goal": "pickup (queued → dispatched) p50 ≤ 100 ms",
            "value": f"{_f(pick['p50_ms'])} ms" if pick else "not measured",
            "ok": (pick["p50_ms"] is not None and pick["p50_ms"] <= 100) if pick else None,
        }
    )
    tp = result.get("execution", {}).get("throughput", {}).get("ours")
    out.append(
        {
            "goal": "≥ 1,000 trivial runs/min end to end",
            "value": f"{_f(tp['runs_per_min'], 0)} runs/min" if tp else "not measured",
            "ok": (tp["runs_per_min"] >= 1000 and tp["complete"]) if tp else None,
        }
    )
    idle = result.get("resources", {}).get("idle", {})
    for service in SERVICES:
        snap = idle.get(f"ours/{service}")
        if not snap:
            continue
        limit = RSS_LIMIT_MB.get(service, RSS_DEFAULT_LIMIT_MB)
        out.append(
            {
                "goal": f"idle RSS of {service} ≤ {limit:.0f} MB",
                "value": f"{_f(snap['rss_mb'])} MB"
                + (
                    f" ({_f(snap['tree_rss_mb'])} MB with its {snap['processes'] - 1} run processes)"
                    if snap["processes"] > 1
                    else ""
                ),
                "ok": snap["rss_mb"] <= limit,
            }
        )
    return out


def markdown(result: dict[str, Any], json_name: str = "") -> str:
    meta = result.get("meta", {})
    m = meta.get("machine", {})
    lines: list[str] = []
    add = lines.append
    add(f"# Benchmark: our control plane vs the reference ({meta.get('date', '?')})")
    add("")
    add(
        f"Machine: {m.get('cores')} cores ({m.get('cpu', '?')}), {m.get('memory_gb')} GB RAM, Linux {m.get('kernel')}; "
        f"load average {m.get('loadavg_start')} at the start, {m.get('loadavg_end')} at the end. "
        f"Commit {meta.get('commit')}; profile `{meta.get('profile')}`; {meta.get('seconds', '?')} s in all; "
        f"load generator: {meta.get('wrk')}."
    )
    rv = meta.get("reference_versions") or {}
    if rv:
        add("")
        add(
            "Reference: "
            + ", ".join(f"{k} {v}" for k, v in rv.items())
            + ". Ours: through Traefik and the gateway (`interloper-stack up`); the reference: its uvicorn directly."
        )
    if json_name:
        add(f"\nRaw data: [`{json_name}`](../{json_name}).")
    ceiling = result.get("ceiling")
    if ceiling:
        add("")
        add(
            f"**Load generator ceiling**: wrk (1 thread, {ceiling['concurrency']} connections) against "
            f"{ceiling['url']}: **{_f(ceiling['rps'], 0)} req/s**, p99 {_f(ceiling['p99_ms'], 2)} ms — the "
            "ceiling of the generator on this machine, far above every figure below."
        )

    add("\n## Goals\n")
    add("| goal | where we stand | |")
    add("|---|---|---|")
    for t in targets(result):
        add(f"| {t['goal']} | {t['value']} | {_mark(t['ok'])} |")

    http = result.get("http", {})
    if http:
        add("\n## HTTP: requests/s and latency (ms)\n")
        add("ratio = ours ÷ reference (req/s: higher is better; p99: lower is better).\n")
        add(
            "| request | c | req/s ours | req/s ref | ratio | p50 ours | p50 ref | p90 ours | p90 ref "
            "| p99 ours | p99 ref | p99 ratio | errors ours/ref |"
        )
        add("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for ep in ENDPOINTS:
            for c, cell in sorted(http.get(ep.name, {}).items(), key=lambda kv: int(kv[0])):
                o, r = cell.get("ours") or {}, cell.get("reference") or {}
                add(
                    f"| `{ep.label}` | {c} | {_f(o.get('rps'), 0)} | {_f(r.get('rps'), 0)} | "
                    f"{_rx(_ratio(o.get('rps'), r.get('rps')))} | {_f(o.get('p50_ms'))} | {_f(r.get('p50_ms'))} | "
                    f"{_f(o.get('p90_ms'))} | {_f(r.get('p90_ms'))} | {_f(o.get('p99_ms'))} | {_f(r.get('p99_ms'))} | "
                    f"{_rx(_ratio(o.get('p99_ms'), r.get('p99_ms')))} | "
                    f"{o.get('error_count', '-')}/{r.get('error_count', '-')} |"
                )

    rt = result.get("realtime", {})
    if rt:
        add("\n## Realtime: `POST /api/jobs/{id}/run` → the run's `runs` INSERT frame on `/api/ws` (ms)\n")
        add(
            "| sockets open | runs | p50 ours | p50 ref | p99 ours | p99 ref | p99 ratio | max ours | max ref "
            "| lost ours/ref |"
        )
        add("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for label, cell in sorted(rt.items(), key=lambda kv: int(kv[0])):
            r = cell.get("reference") or {}
            for key in (k for k in REALTIME_KINDS if k in cell):
                o = cell[key]
                add(
                    f"| {label}, {REALTIME_KINDS[key]} | {o.get('count', '-')} | {_f(o.get('p50_ms'))} | "
                    f"{_f(r.get('p50_ms'))} | {_f(o.get('p99_ms'))} | {_f(r.get('p99_ms'))} | "
                    f"{_rx(_ratio(o.get('p99_ms'), r.get('p99_ms')))} | {_f(o.get('max_ms'))} | "
                    f"{_f(r.get('max_ms'))} | {o.get('lost', '-')}/{r.get('lost', '-')} |"
                )

    if rt:
        add(
            "\nThe latency splits into the POST's own answer and the frame's delay after that answer (p50 / p99, ms):\n"
        )
        add("| sockets open | POST ours | POST ref | frame after answer ours | frame after answer ref |")
        add("|--:|--:|--:|--:|--:|")

        def pair(d: dict[str, Any]) -> str:
            return f"{_f(d.get('p50_ms'))} / {_f(d.get('p99_ms'))}" if d else "-"

        for label, cell in sorted(rt.items(), key=lambda kv: int(kv[0])):
            r = cell.get("reference") or {}
            for key in (k for k in REALTIME_KINDS if k in cell):
                o = cell[key]
                add(
                    f"| {label}, {REALTIME_KINDS[key]} | {pair(o.get('post') or {})} | {pair(r.get('post') or {})} | "
                    f"{pair(o.get('frame_after_response') or {})} | {pair(r.get('frame_after_response') or {})} |"
                )

    ex = result.get("execution", {})
    if ex:
        add("\n## Execution\n")
        add("| metric | ours | reference | ratio |")
        add("|---|--:|--:|--:|")
        po, pr = ex.get("pickup", {}).get("ours") or {}, ex.get("pickup", {}).get("reference") or {}
        for key, name in (("p50_ms", "pickup p50 (ms)"), ("p99_ms", "pickup p99 (ms)")):
            add(f"| {name} | {_f(po.get(key))} | {_f(pr.get(key))} | {_rx(_ratio(po.get(key), pr.get(key)))} |")
        qo, qr = po.get("queued_to_finished") or {}, pr.get("queued_to_finished") or {}
        add(
            f"| queued → finished p50 (ms) | {_f(qo.get('p50_ms'))} | {_f(qr.get('p50_ms'))} | "
            f"{_rx(_ratio(qo.get('p50_ms'), qr.get('p50_ms')))} |"
        )
        add(f"| pickup samples | {po.get('count', '-')} | {pr.get('count', '-')} | |")
        to, tr = ex.get("throughput", {}).get("ours") or {}, ex.get("throughput", {}).get("reference") or {}
        add(
            f"| runs/min end to end | {_f(to.get('runs_per_min'), 0)} | {_f(tr.get('runs_per_min'), 0)} | "
            f"{_rx(_ratio(to.get('runs_per_min'), tr.get('runs_per_min')))} |"
        )
        add(
            f"| burst: finished/queued (failed) | {to.get('finished', '-')}/{to.get('runs', '-')} "
            f"({to.get('failed', '-')}) | {tr.get('finished', '-')}/{tr.get('runs', '-')} ({tr.get('failed', '-')}) | |"
        )
        if to.get("cpu_s") and to.get("finished"):
            per = {k: v * 1000 / to["finished"] for k, v in to["cpu_s"].items() if v}
            add(
                f"\nCPU ms per executed trivial run, end to end (the burst: trigger through Traefik and the "
                f"gateway, relay, NATS, worker with its run processes, PostgreSQL): **{_f(sum(per.values()), 1)}**; "
                + ", ".join(f"{k} {_f(v, 2)}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
                + "."
            )
        db = po.get("db_dispatched_minus_created")
        if db:
            add(
                "\nOurs, from the database for the same runs (`dispatched_at - created_at`): "
                f"p50 {_f(db.get('p50_ms'))} ms, "
                f"p99 {_f(db.get('p99_ms'))} ms. Pickup above = INSERT frame → `dispatched` UPDATE frame on the socket."
            )

    res = result.get("resources", {})
    if res.get("idle"):
        add("\n## Resources per process\n")
        add(
            "Idle = after seeding, before any load; RSS of the process (with descendants: PostgreSQL backends, "
            "run processes); peak = highest RSS of the process tree during the whole run; CPU = seconds used during "
            "all HTTP scenarios of that system (user + system, whole tree).\n"
        )
        add("| process | idle RSS MB | idle RSS MB (tree) | peak RSS MB (tree) | CPU s during HTTP load |")
        add("|---|--:|--:|--:|--:|")
        cpu_http: dict[str, float] = {}
        for phase, data in res.get("phases", {}).items():
            if phase.startswith("http/"):
                for comp, v in data.get("cpu_s", {}).items():
                    cpu_http[comp] = cpu_http.get(comp, 0.0) + v
        for comp, snap in sorted(res["idle"].items()):
            add(
                f"| {comp} | {_f(snap['rss_mb'])} | {_f(snap['tree_rss_mb'])} | "
                f"{_f(res.get('peak_rss_mb', {}).get(comp))} | {_f(cpu_http.get(comp), 1)} |"
            )

    conc = str(max((int(c) for cell in http.values() for c in cell), default=32))
    add("\n## Where the time goes (ours)\n")
    add(
        f"CPU milliseconds per request, per process, at concurrency {conc} (psutil, whole process trees; the load "
        "generator excluded). Both systems shared the 2 cores with the load generator.\n"
    )
    comps: tuple[str, ...] = (
        "traefik",
        "gateway",
        "identity",
        "pipelines",
        "postgres",
        "nats",
        "pipelines-worker",
        "agent",
    )
    if result.get("meta", {}).get("replicas"):
        comps = ("traefik", "traefik-internal", *comps[1:])
        reps = ", ".join(f"{k}={v}" for k, v in sorted(result["meta"]["replicas"].items()) if v > 1)
        add(f"Replicas: {reps or 'none'}; a service's column is the sum of its replicas.\n")
    add("| request | " + " | ".join(comps) + " | total ours | total reference (api + postgres) |")
    add("|---|" + "--:|" * (len(comps) + 2))
    for ep in ENDPOINTS:
        cell = http.get(ep.name, {}).get(conc, {})
        o, r = cell.get("ours"), cell.get("reference")
        if not o or not o.get("requests"):
            continue
        per = _folded({k: v * 1000 / o["requests"] for k, v in o.get("cpu_s", {}).items()})
        total = sum(per.values())
        rtot = (sum(r.get("cpu_s", {}).values()) * 1000 / r["requests"]) if r and r.get("requests") else None
        cells = " | ".join(_f(per.get(k), 2) for k in comps)
        add(f"| `{ep.label}` | {cells} | {_f(total, 2)} | {_f(rtot, 2)} |")
    for prof in (result.get("profile") or {}).values():
        add(f"\npy-spy during {prof['scenario']}: where each process's on-CPU samples are (own time):\n")
        for name, p in prof.get("processes", {}).items():
            if "error" in p:
                add(f"- **{name}**: {p['error']}")
                continue
            cats = ", ".join(f"{x['category']} {x['pct']}%" for x in p.get("categories", [])[:7])
            fr = "; ".join(f"`{x['frame']}` {x['pct']}%" for x in p["own_frames"][:5])
            add(f"- **{name}** ([flame graph]({p['svg']}), {p['samples']} samples): {cats}. Top functions: {fr}.")

    plots = result.get("plots") or []
    if plots:
        add("\n## Plots\n")
        for p in plots:
            add(f"![{p}]({p})")
    if result.get("errors") or result.get("skipped"):
        add("\n## Errors and skipped scenarios\n")
        for e in result.get("errors", []):
            add(f"- {e['scenario']}: `{e['error'][:300]}`")
        for s in result.get("skipped", []):
            add(f"- skipped: {s}")
    add("")
    return "\n".join(lines)


def make_plots(result: dict[str, Any], out_dir: Path) -> list[str]:
    try:
        import matplotlib
    except ImportError:
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ours": "#1f77b4", "ours-api": "#2ca02c", "reference": "#ff7f0e"}
    made: list[str] = []
    http = result.get("http", {})
    concs = sorted({int(c) for cell in http.values() for c in cell})
    if http and concs:
        fig, axes = plt.subplots(1, len(concs), figsize=(6 * len(concs), 4.5), squeeze=False)
        for ax, c in zip(axes[0], concs, strict=True):
            names = [ep.name for ep in ENDPOINTS if str(c) in http.get(ep.name, {})]
            for j, who in enumerate(("ours", "reference")):
                vals = [(http[n][str(c)].get(who) or {}).get("rps", 0) for n in names]
                xs = [i + (j - 0.5) * 0.4 for i in range(len(names))]
                ax.bar(xs, vals, 0.4, label=who, color=colors[who])
                for x, v in zip(xs, vals, strict=True):
                    if v:
                        ax.text(x, v * 1.05, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
            ax.set_xticks(range(len(names)), names)
            ax.set_yscale("log")
            ax.set_title(f"requests/s at concurrency {c} (log scale)")
            ax.legend()
            ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "http-throughput.png", dpi=110)
        plt.close(fig)
        made.append("http-throughput.png")

        c = max(concs)
        names = [ep.name for ep in ENDPOINTS if str(c) in http.get(ep.name, {})]
        cols = 3
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
        for k, name in enumerate(names):
            ax = axes[k // cols][k % cols]
            for who in ("ours", "reference"):
                cell = http[name][str(c)].get(who)
                if not cell:
                    continue
                pts = sorted((float(p), v) for p, v in cell["percentiles_ms"].items() if float(p) < 100)
                xs = [-math.log10(1 - p / 100) for p, _ in pts]
                ax.plot(xs, [max(v, 0.01) for _, v in pts], label=who, color=colors[who])
            ax.set_yscale("log")
            ticks = [50, 90, 99, 99.9]
            ax.set_xticks([-math.log10(1 - t / 100) for t in ticks], [f"p{t:g}" for t in ticks])
            ax.set_title(f"{name} (c={c})")
            ax.set_ylabel("latency ms")
            ax.grid(alpha=0.3)
            ax.legend()
        for k in range(len(names), rows * cols):
            axes[k // cols][k % cols].axis("off")
        fig.suptitle("latency distribution (percentile curves)")
        fig.tight_layout()
        fig.savefig(out_dir / "http-latency.png", dpi=110)
        plt.close(fig)
        made.append("http-latency.png")

    rt = result.get("realtime", {})
    if rt:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, cell in sorted(rt.items(), key=lambda kv: int(kv[0])):
            for who in ("ours", "ours-api", "reference"):
                samples = sorted((cell.get(who) or {}).get("samples_ms") or [])
                if not samples:
                    continue
                ys = [(i + 1) / len(samples) for i in range(len(samples))]
                ax.plot(
                    samples,
                    ys,
                    label=f"{who}, {label} socket(s)",
                    color=colors[who],
                    linestyle="-" if label == "1" else "--",
                )
        ax.set_xscale("log")
        ax.set_xlabel("POST run → runs INSERT frame (ms)")
        ax.set_ylabel("fraction of runs")
        ax.axvline(50, color="grey", linestyle=":", label="goal p99 ≤ 50 ms")
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title("realtime latency (CDF)")
        fig.tight_layout()
        fig.savefig(out_dir / "realtime-latency.png", dpi=110)
        plt.close(fig)
        made.append("realtime-latency.png")

    idle = result.get("resources", {}).get("idle", {})
    if idle:
        comps = sorted(idle)
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(comps) + 1.5))
        peak = result.get("resources", {}).get("peak_rss_mb", {})
        ys = range(len(comps))
        idle_mb = [idle[c]["tree_rss_mb"] for c in comps]
        ax.barh([y + 0.2 for y in ys], idle_mb, 0.4, label="idle (tree)", color="#2ca02c")
        ax.barh([y - 0.2 for y in ys], [peak.get(c, 0) for c in comps], 0.4, label="peak (tree)", color="#d62728")
        ax.set_yticks(list(ys), comps)
        ax.axvline(150, color="grey", linestyle=":", label="150 MB goal (services)")
        ax.set_xlabel("RSS MB")
        ax.legend()
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "resources-rss.png", dpi=110)
        plt.close(fig)
        made.append("resources-rss.png")

    if http:
        c = str(max(concs))
        comps = ["traefik", "gateway", "identity", "pipelines", "postgres", "nats", "pipelines-worker"]
        names = [ep.name for ep in ENDPOINTS if (http.get(ep.name, {}).get(c) or {}).get("ours")]
        if names:
            fig, ax = plt.subplots(figsize=(9, 4.5))
            bottom = [0.0] * len(names)
            for comp in comps:
                vals = []
                for n in names:
                    o = http[n][c]["ours"]
                    vals.append(o.get("cpu_s", {}).get(comp, 0.0) * 1000 / max(1, o["requests"]))
                ax.bar([i - 0.2 for i in range(len(names))], vals, 0.38, bottom=bottom, label=f"ours: {comp}")
                bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
            ref_vals = []
            for n in names:
                r = http[n][c].get("reference") or {}
                ref_vals.append(sum(r.get("cpu_s", {}).values()) * 1000 / max(1, r.get("requests", 0) or 1))
            ax.bar(
                [i + 0.2 for i in range(len(names))],
                ref_vals,
                0.38,
                label="reference (api + postgres)",
                color="#bbbbbb",
                hatch="//",
            )
            ax.set_xticks(range(len(names)), names)
            ax.set_ylabel("CPU ms per request")
            ax.set_title(f"where the CPU goes per request (c={c})")
            ax.legend(fontsize=8, ncol=2)
            ax.grid(axis="y", alpha=0.3)
            fig.tight_layout()
            fig.savefig(out_dir / "cpu-per-request.png", dpi=110)
            plt.close(fig)
            made.append("cpu-per-request.png")
    return made


def render(result: dict[str, Any], out_dir: Path, *, plots: bool = True, json_name: str = "") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        result["plots"] = make_plots(result, out_dir)
    path = out_dir / "report.md"
    path.write_text(markdown(result, json_name), encoding="utf-8")
    return path
