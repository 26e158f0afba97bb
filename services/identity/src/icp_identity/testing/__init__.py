"""Test helpers shipped with the identity service (a fake Google OAuth server)."""
