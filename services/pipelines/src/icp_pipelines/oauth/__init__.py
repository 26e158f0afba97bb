"""Ad-platform OAuth (spec 2.14, 3.5): the configured providers and the server-side code exchange.

`http.py` holds the outbound HTTP client shared with `external` (one bounded pool per process,
opened and closed with the app); `settings.py` the `INTERLOPER_OAUTH_*` settings."""
