"""Runs, their events and per-asset executions (spec 2.11, 4.4, 6.2)."""
