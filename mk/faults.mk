# Fault injection and soak (included by the main Makefile). See README "Faults and soak".
#   make chaos   kill -9 every component in turn under load, then check the end state (bench/chaos.py)
#   make soak    the benchmark's mix at a steady rate for SOAK_MINUTES, errors, p99 over time and
#                RSS of every process at start and end (bench/soak.py)
# Both start their own stack in a temp dir (loopback only); a short chaos runs in `make test`
# (tests-e2e/test_chaos_smoke.py).

CHAOS_ARGS ?=
SOAK_MINUTES ?= 10
SOAK_ARGS ?=

.PHONY: chaos soak

chaos: install ## Kill -9 every component in turn under load; no run lost/stuck/misattributed, frames, e-mails once
	uv run python -m bench.chaos $(CHAOS_ARGS)

soak: install ## The benchmark's mix at a steady rate for SOAK_MINUTES (10): errors, p99 over time, RSS growth
	uv run python -m bench.soak --minutes $(SOAK_MINUTES) $(SOAK_ARGS)
