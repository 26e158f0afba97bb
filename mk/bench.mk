# Benchmarks against the reference implementation (included by the main Makefile). See bench/README.md.
#   make bench        both systems side by side (< 15 min): bench/results/<stamp>-full.json + report + plots
#   make bench-smoke  the same harness in miniature (a minute; results in bench/.work/smoke-results);
#                     also part of `make test` (tests-e2e/test_bench_smoke.py)
# The reference is installed into bench/.venv-reference (from bench/reference/requirements.txt), never into .venv.
# matplotlib (plots) and py-spy (flame graphs) are pulled by `uv run --with` for these targets only.

BENCH_ARGS ?=
BENCH_TOOLS = --with matplotlib==3.11.2 --with py-spy==0.4.3

.PHONY: bench bench-smoke bench-wrk

bench-wrk:
	@command -v wrk >/dev/null 2>&1 || { \
		echo "installing wrk (Debian package)"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi; }

bench: install bench-wrk ## Benchmark our stack against the reference (interloper-api 0.2.0): JSON, Markdown, plots
	uv run $(BENCH_TOOLS) python -m bench run --profile full $(BENCH_ARGS)

bench-smoke: install ## The benchmark harness in miniature (both systems, every scenario, a few seconds each)
	uv run python -m bench run --profile smoke --out $(or $(BENCH_OUT),bench/.work/smoke-results) $(BENCH_ARGS)
