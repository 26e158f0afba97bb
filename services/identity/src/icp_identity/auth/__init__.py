"""Sign-in (Google, dev login), logout, the caller's profile, switching organisation."""
