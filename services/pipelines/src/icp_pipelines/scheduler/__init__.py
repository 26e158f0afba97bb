"""`interloper-pipelines scheduler`: leader election, cron, reaper, backfill sweep (see `scheduler`)."""
