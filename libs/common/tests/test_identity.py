"""The signed identity assertion and the role checks."""

from __future__ import annotations

import pytest

from icp_common.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from icp_common.identity import Identity, IdentitySigner, require_authenticated, require_role

SIGNER = IdentitySigner(b"secret-one", ttl_seconds=60, skew_seconds=5, audience="identity")
MEMBER = Identity(state="ok", user_id="u1", email="a@example.com", org_id="o1", org_exists=True, role="editor")


def test_round_trip_keeps_every_field() -> None:
    token = SIGNER.sign(MEMBER, now=1000)
    assert SIGNER.verify(token, now=1001) == MEMBER


def test_missing_header_is_anonymous() -> None:
    assert SIGNER.verify(None).state == "anonymous"
    assert SIGNER.verify("").state == "anonymous"


def test_expired_and_future_assertions_are_rejected_outside_the_skew() -> None:
    token = SIGNER.sign(MEMBER, now=1000)
    assert SIGNER.verify(token, now=1000 + 60 + 5).user_id == "u1"  # within skew
    with pytest.raises(Unauthenticated, match="Expired"):
        SIGNER.verify(token, now=1000 + 60 + 6)
    with pytest.raises(Unauthenticated, match="Expired"):
        SIGNER.verify(token, now=1000 - 6)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: t.split(".")[0] + "." + t.split(".")[1][:-1] + "x." + t.split(".")[2],  # payload changed
        lambda t: "v2" + t[2:],  # unknown version
        lambda t: "garbage",
        lambda t: t + ".extra",
    ],
)
def test_tampered_assertions_are_rejected(mutate: object) -> None:
    token = SIGNER.sign(MEMBER)
    with pytest.raises(Unauthenticated):
        SIGNER.verify(mutate(token))  # type: ignore[operator]


def test_another_secret_cannot_forge() -> None:
    forged = IdentitySigner(b"secret-two", audience="identity").sign(MEMBER)
    with pytest.raises(Unauthenticated):
        SIGNER.verify(forged)


def test_an_assertion_for_another_service_is_refused() -> None:
    """Minted by the gateway for pipelines (or by the agent calling pipelines): identity refuses it."""
    gateway = IdentitySigner(b"secret-one")
    for_pipelines = gateway.sign(MEMBER, audience="pipelines")
    assert IdentitySigner(b"secret-one", audience="pipelines").verify(for_pipelines) == MEMBER
    with pytest.raises(Unauthenticated):
        SIGNER.verify(for_pipelines)


def test_an_assertion_without_audience_is_refused() -> None:
    """The pre-audience format (same key, no `aud`) no longer verifies."""
    import base64
    import hashlib
    import hmac
    import json
    import time

    from icp_common.identity import derive_key

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    body = b64(json.dumps({"id": MEMBER.to_dict(), "iat": now, "exp": now + 30}).encode())
    key = derive_key(b"secret-one", "identity-assertion-v1")
    token = f"v1.{body}.{b64(hmac.new(key, f'v1.{body}'.encode(), hashlib.sha256).digest())}"
    with pytest.raises(Unauthenticated):
        SIGNER.verify(token)


def test_signing_needs_an_audience() -> None:
    with pytest.raises(ValueError):
        IdentitySigner(b"secret-one").sign(MEMBER)


def test_assertions_are_short_lived_by_default() -> None:
    signer = IdentitySigner(b"secret-one", audience="identity")
    token = signer.sign(MEMBER, now=1000)
    assert signer.verify(token, now=1000 + 30).user_id == "u1"
    with pytest.raises(Unauthenticated, match="Expired"):
        signer.verify(token, now=1000 + 30 + 6)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        IdentitySigner(b"")


@pytest.mark.parametrize(
    ("identity", "minimum", "error", "detail"),
    [
        (Identity(), "viewer", Unauthenticated, "Not authenticated"),
        (Identity(state="invalid"), "viewer", Unauthenticated, "Invalid or expired session"),
        (Identity(state="invalid", token_id=""), "viewer", Unauthenticated, "Invalid or expired token"),
        (Identity(state="ok", user_id="u"), "viewer", InvalidInput, "No organisation selected"),
        (Identity(state="ok", user_id="u", org_id="o"), "viewer", NotFound, "Organisation not found"),
        (
            Identity(state="ok", user_id="u", org_id="o", org_exists=True),
            "viewer",
            Forbidden,
            "Not a member of this organisation",
        ),
        (
            Identity(state="ok", user_id="u", org_id="o", org_exists=True, role="viewer"),
            "editor",
            Forbidden,
            "Requires editor role or higher",
        ),
        (
            Identity(state="ok", user_id="u", org_id="o", org_exists=True, role="editor"),
            "admin",
            Forbidden,
            "Requires admin role or higher",
        ),
        (
            Identity(state="ok", user_id="u", org_id="o", org_exists=True, role="superuser"),
            "viewer",
            Forbidden,
            "Requires viewer role or higher",
        ),
    ],
)
def test_role_precedence(identity: Identity, minimum: str, error: type[Exception], detail: str) -> None:
    with pytest.raises(error) as caught:
        require_role(identity, minimum)
    assert caught.value.detail == detail  # type: ignore[attr-defined]


@pytest.mark.parametrize(("role", "minimum"), [("viewer", "viewer"), ("editor", "viewer"), ("admin", "editor")])
def test_sufficient_roles_pass(role: str, minimum: str) -> None:
    identity = Identity(state="ok", user_id="u", org_id="o", org_exists=True, role=role)
    assert require_role(identity, minimum) is identity


def test_authenticated_needs_no_org() -> None:
    identity = Identity(state="ok", user_id="u")
    assert require_authenticated(identity) is identity
