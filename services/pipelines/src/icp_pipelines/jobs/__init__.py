"""Jobs: schedules over sources and standalone assets; run and backfill triggers (spec 2.10)."""
