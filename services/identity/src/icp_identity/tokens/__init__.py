"""API tokens and service accounts: `/api/tokens`, and resolving `Authorization: Bearer ilp_...`."""
