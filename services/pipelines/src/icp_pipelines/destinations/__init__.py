"""Destinations: configured instances of catalog destinations (spec 2.9)."""
