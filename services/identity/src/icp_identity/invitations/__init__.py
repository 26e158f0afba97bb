"""Invitations to an organisation: hashed single-use tokens, events for the e-mail."""
