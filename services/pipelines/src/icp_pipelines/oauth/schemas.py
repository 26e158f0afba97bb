"""Request and response bodies of `/api/oauth` (spec 2.14)."""

from __future__ import annotations

from pydantic import BaseModel


class CodeExchange(BaseModel):
    """`POST /api/oauth/{provider}`: the authorization code the provider redirected back with."""

    code: str


class ProviderInfo(BaseModel):
    """A configured provider: its public app id and redirect URI, with the catalog's `x-oauth` metadata."""

    key: str
    client_id: str
    redirect_uri: str
    auth_url: str = ""
    label: str = ""
    icon: str = ""
