"""Assistant sessions (spec 9.3): ADK sessions scoped to (user, organisation)."""
