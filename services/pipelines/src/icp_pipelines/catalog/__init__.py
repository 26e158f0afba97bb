"""The component catalog from interloper-core, loaded once at start-up (spec 2.6, 7)."""
