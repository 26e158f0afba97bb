"""Memberships: who belongs to which organisation with which role."""
