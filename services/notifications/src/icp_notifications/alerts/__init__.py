"""Failure alerts: per-organisation rules, matched against pipelines' alert events, delivered by
e-mail and webhooks (JSON signed with HMAC-SHA256, or a Slack incoming-webhook body)."""
