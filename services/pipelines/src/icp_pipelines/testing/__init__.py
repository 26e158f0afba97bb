"""Test helpers shipped with the service (fake upstream servers for tests and local runs)."""
