"""A real OpenID Connect provider for tests: `oidc-provider-mock` (an Authlib/Flask OpenID
provider) served from a thread on a free port.

`OidcProviderServer.url` is its issuer. Tests choose who signs in: `set_user(sub, email=...,
email_verified=True, ...)` stores the claims, and `authorize(browser, url, sub)` does what a
person does at the provider's consent form and returns the callback URL it redirects to. For
the refusals that a well-behaved provider never produces, `rotate_key()` switches to a new
signing key (new key id), `rewrite_id_token` lets a test replace the ID token of the next
token responses (forged, expired, signed with a foreign key) and `token_status` makes the token
endpoint fail."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import flask
import httpx
import werkzeug.serving
from authlib import jose  # the key type oidc-provider-mock signs with
from oidc_provider_mock import _app as _mock
from oidc_provider_mock import app as provider_app

_get_jwt_config = _mock.OpenIDCode.get_jwt_config


def _get_jwt_config_with_kid(self: Any, grant: Any, client: object = None) -> Any:
    """oidc-provider-mock signs ID tokens without a `kid` header; real providers (Keycloak, Okta,
    Entra ID, Google) always send one, and key rotation is found through it."""
    config = _get_jwt_config(self, grant, client)
    config["kid"] = config["key"]["kid"]
    return config


_mock.OpenIDCode.get_jwt_config = _get_jwt_config_with_kid  # type: ignore[method-assign]

# (claims, header) of the ID token the provider issued -> the ID token to send instead
IdTokenRewrite = Callable[[dict[str, Any], dict[str, Any]], str]


@dataclass
class OidcProviderServer:
    url: str = ""
    flask_app: flask.Flask | None = None
    rewrite_id_token: IdTokenRewrite | None = None
    token_status: int | None = None  # the token endpoint answers this status (and no JSON) instead
    token_requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def _storage(self) -> Any:
        assert self.flask_app is not None
        with self.flask_app.test_request_context():
            self.flask_app.preprocess_request()  # its before_request puts the storage on flask.g
            return flask.g.oidc_provider_mock_storage

    @property
    def signing_key(self) -> Any:
        """The provider's current private key (an authlib RSAKey with a `kid`)."""
        return self._storage.jwk

    def rotate_key(self) -> None:
        self._storage.jwk = jose.RSAKey.generate_key(is_private=True)

    def set_user(self, sub: str, **claims: Any) -> None:
        """What the provider asserts when `sub` signs in (email, email_verified, name, ...)."""
        r = httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        r.raise_for_status()

    def sign(self, claims: dict[str, Any], key: Any = None) -> str:
        """An RS256 JWT of `claims`, signed with `key` (default: the provider's own key)."""
        key = key or self.signing_key
        header = {"alg": "RS256", "kid": key.as_dict()["kid"]}
        return jose.jwt.encode(header, claims, key.as_dict(is_private=True)).decode()  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.rewrite_id_token = None
        self.token_status = None
        self.token_requests.clear()

    def authorize(self, browser: httpx.Client, authorization_url: str, sub: str) -> str:
        """Open the provider's consent page and authorize `sub`; the callback URL it redirects to."""
        page = browser.get(authorization_url)
        assert page.status_code == 200, page.text
        answer = browser.post(authorization_url, data={"sub": sub})
        assert answer.status_code == 302, answer.text
        return str(answer.headers["location"])

    def _middleware(self, inner: Any) -> Any:
        """Records token requests; applies `rewrite_id_token` to token responses."""

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != "/oauth2/token":
                return inner(environ, start_response)  # type: ignore[no-any-return]
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            self.token_requests.append(dict(httpx.QueryParams(body.decode())))
            if self.token_status is not None:
                start_response(f"{self.token_status} Failing", [("Content-Type", "text/plain")])
                return [b"failing on purpose"]
            environ["wsgi.input"] = _Body(body)
            captured: dict[str, Any] = {}

            def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                captured["status"], captured["headers"] = status, headers
                return lambda _data: None

            chunks = b"".join(inner(environ, capture))
            rewrite = self.rewrite_id_token
            if rewrite is not None and captured["status"].startswith("200"):
                data = json.loads(chunks)
                issued = jose.jwt.decode(data["id_token"], self.signing_key.as_dict())
                data["id_token"] = rewrite(dict(issued), dict(issued.header))
                chunks = json.dumps(data).encode()
            headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
            start_response(captured["status"], [*headers, ("Content-Length", str(len(chunks)))])
            return [chunks]

        return app


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else min(len(self.data), self.pos + size)
        chunk, self.pos = self.data[self.pos : end], end
        return chunk

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


@contextmanager
def serve_oidc_provider(host: str = "127.0.0.1") -> Iterator[OidcProviderServer]:
    """A running provider (nonce required, as real providers do when one is sent) until the end."""
    server = OidcProviderServer()
    app = provider_app(require_nonce=True)
    app.wsgi_app = server._middleware(app.wsgi_app)  # type: ignore[method-assign]
    server.flask_app = app
    http = werkzeug.serving.make_server(host, 0, app, threaded=True)
    server.url = f"http://{host}:{http.server_port}"
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        http.shutdown()
        thread.join(timeout=5)
        http.server_close()
