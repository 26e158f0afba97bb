"""Deliveries: one row per event the service has handled (idempotency, attempts, outcome)."""
