"""Sessions: hashed session tokens, their expiry, the active organisation; Authenticate."""
