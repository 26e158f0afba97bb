"""Rebuilding interloper-core components from database rows (spec 7.3), for partition row counts
now and for the worker's run execution (issue 5)."""
