"""`/api/external/*` (spec 8 and the web UI's `x-fetch` fields): account look-ups at the ad platforms
with the credentials the caller posts, mapped to `[{label_key: ..., value_key: ...}]` lists."""
