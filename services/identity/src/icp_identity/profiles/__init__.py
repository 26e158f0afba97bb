"""Profiles: the users known to Interloper (created on first sign-in)."""
