"""Backfills: one run per day over a date range (spec 2.12, 6.3)."""
