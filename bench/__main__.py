"""python -m bench run [--profile full|smoke] ...   |   python -m bench report RESULT.json"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.config import PROFILES

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start both systems, measure, write JSON + report")
    run.add_argument("--profile", choices=sorted(PROFILES), default="full")
    run.add_argument("--out", default=str(HERE / "results"), help="results directory (default bench/results)")
    run.add_argument("--attach-stack", metavar="DATA_DIR", help="use a running `interloper-stack up` (its data dir)")
    run.add_argument("--stack-args", default="", help="extra `interloper-stack up` arguments")
    run.add_argument(
        "--replicas",
        default="",
        help="our stack with replicas, e.g. gateway=2,pipelines=2,pipelines-worker=3 (interloper-stack up --replicas)",
    )
    run.add_argument("--skip-reference", action="store_true", help="measure ours only")
    run.add_argument("--reference-venv", default=str(HERE / ".venv-reference"))
    run.add_argument("--only", default="", help="comma list of: http,realtime,execution,profile (default all)")
    run.add_argument(
        "--endpoints", default="", help="comma list of HTTP scenarios (bench.config.ENDPOINTS names; default all)"
    )
    run.add_argument("--no-plots", action="store_true")
    run.add_argument("--keep-work", action="store_true", help="keep the scratch dir (logs, databases)")
    rep = sub.add_parser("report", help="render report.md and the plots again from a result JSON")
    rep.add_argument("result", type=Path)
    rep.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "run":
        from bench.run import run as run_bench

        run_bench(args, PROFILES[args.profile])
        return 0
    from bench import report

    result = json.loads(args.result.read_text())
    out_dir = args.result.with_suffix("")
    path = report.render(result, out_dir, plots=not args.no_plots, json_name=args.result.name)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
