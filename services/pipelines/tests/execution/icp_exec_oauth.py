"""Catalog components of the OAuth execution test (importable by the worker's child processes
through PYTHONPATH): a connection with a Google `x-oauth` block and a source whose asset writes
the credentials its run received to `<out_dir>/received.json` (never into the run's events)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import interloper as il


class ProbeConnection(il.Connection):
    """Signed in with Google through the platform's OAuth app."""

    key: ClassVar[str] = "exec_oauth_connection"
    oauth: ClassVar[il.OAuthConfig] = il.OAuthConfig(
        provider="google", auth_url="https://accounts.google.com/o/oauth2/v2/auth", scope="ads"
    )

    client_id: str = il.InputField(description="OAuth client id")
    client_secret: str = il.SecretField(description="OAuth client secret")
    refresh_token: str = il.SecretField(description="OAuth refresh token")


class ProbeSource(il.Source):
    """One asset that records the connection it was given."""

    key: ClassVar[str] = "exec_oauth_probe"
    resource_types: ClassVar[dict[str, type[il.Resource]]] = {"connection": ProbeConnection}

    out_dir: str = il.InputField(default="", description="Where the asset writes what it received")

    @il.asset(resources={"connection": ProbeConnection})  # type: ignore[misc,untyped-decorator]
    def received(self, connection: ProbeConnection) -> list[dict[str, Any]]:
        seen = {"client_id": connection.client_id, "client_secret": connection.client_secret}
        (Path(self.out_dir) / "received.json").write_text(json.dumps(seen))
        return [{"ok": 1}]
