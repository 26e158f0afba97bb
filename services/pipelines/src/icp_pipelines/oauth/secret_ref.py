"""The reference to the platform's own OAuth client secret (issue 15, item 1).

The code exchange answers `client_secret: "platform:oauth/<provider>/client_secret"` instead of the
secret itself: the web UI copies it into the connection like any other token field, the resource
API stores and returns it as it is, and only server-side code that calls the provider replaces it
with the configured secret: the worker when it hands a run its resources (`resolve_connection`,
only in the field the catalog's `x-oauth.fields` maps `client_secret` to, only for the provider
that block names) and the `/api/external` look-ups (`resolve_secret`, only for the provider the
route calls). The secret therefore only ever travels to the provider and to the run process."""

from __future__ import annotations

import re
from typing import Any

from icp_common.errors import InvalidInput

from .settings import OAuthSettings

PREFIX = "platform:oauth/"
_REF = re.compile(r"platform:oauth/([a-z]+)/client_secret")


def secret_ref(provider: str) -> str:
    """The placeholder standing for `provider`'s platform client secret."""
    return f"{PREFIX}{provider}/client_secret"


def _configured_secret(settings: OAuthSettings, provider: str) -> str | None:
    try:
        credentials = settings.credentials(provider)
    except AttributeError:  # not a provider we know
        return None
    return credentials.client_secret or None


def resolve_secret(value: str, provider: str, settings: OAuthSettings) -> str:
    """`value` itself, or the platform's secret when `value` is `provider`'s reference. A
    reference to another provider's app, or to an app not configured here, is a 400."""
    if not value.startswith(PREFIX):
        return value
    match = _REF.fullmatch(value)
    secret = _configured_secret(settings, provider) if match and match.group(1) == provider else None
    if secret is None:
        raise InvalidInput(f"client_secret refers to a platform OAuth app that cannot be used for {provider}")
    return secret


def resolve_connection(schema: Any, data: dict[str, Any], settings: OAuthSettings) -> dict[str, Any]:
    """`data` of a resource whose catalog `config_schema` is `schema`, with the platform's secret
    in place of its reference (a copy; `data` itself when there is nothing to replace). Anything
    else, including a reference to another provider, stays as it is."""
    block = schema.get("x-oauth") if isinstance(schema, dict) else None
    if not isinstance(block, dict) or not isinstance(block.get("provider"), str):
        return data
    provider: str = block["provider"]
    fields = block.get("fields")
    target = fields.get("client_secret", "client_secret") if isinstance(fields, dict) else "client_secret"
    if not isinstance(target, str) or data.get(target) != secret_ref(provider):
        return data
    secret = _configured_secret(settings, provider)
    return data if secret is None else {**data, target: secret}
