"""Organisations (tenants) and the caller's list of them."""
