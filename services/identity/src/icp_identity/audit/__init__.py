"""The audit log store (issue 18.3): entries of every service, read by admins."""
