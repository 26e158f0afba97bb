"""icp_common.audit: action names from route templates, the client address, the actor of each
kind of caller, and an entry's exact shape (nothing but ids and request metadata)."""

from __future__ import annotations

import re

import pytest
from starlette.requests import Request

from icp_common.audit import action_of, actor_of, client_ip, new_entry, outbox_message
from icp_common.identity import Identity

USER = Identity(state="ok", user_id="u1", email="a@example.com", org_id="o1", role="admin")


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [
        ("POST", "/api/jobs/", "jobs.create"),
        ("PUT", "/api/jobs/{job_id}", "jobs.update"),
        ("DELETE", "/api/jobs/{job_id}", "jobs.delete"),
        ("POST", "/api/jobs/{job_id}/run", "jobs.run"),
        ("POST", "/api/runs/{run_id}/cancel", "runs.cancel"),
        ("POST", "/api/assets/{asset_id}/dependencies", "assets.dependencies.create"),
        ("DELETE", "/api/assets/{asset_id}/dependencies/{upstream_asset_id}", "assets.dependencies.delete"),
        ("DELETE", "/api/organisations/members/{user_id}", "organisations.members.delete"),
    ],
)
def test_action_names_from_route_templates(method: str, path: str, action: str) -> None:
    assert action_of(method, path) == action


def test_the_client_address_is_the_first_forwarded_one() -> None:
    # Traefik replaces a client's X-Forwarded-For with the peer; the gateway appends Traefik's.
    assert client_ip({"x-forwarded-for": "198.51.100.7, 10.0.0.2"}, "10.0.0.3") == "198.51.100.7"
    assert client_ip({}, "10.0.0.3") == "10.0.0.3"
    assert client_ip({"x-forwarded-for": " , x"}, None) is None


def test_actors() -> None:
    assert actor_of(USER) == {"type": "user", "id": "u1", "email": "a@example.com"}
    token = Identity(state="ok", user_id="u1", email="a@example.com", token_id="t1")
    assert actor_of(token) == {"type": "token", "id": "t1", "email": "a@example.com"}
    service = Identity(state="ok", user_id="t2", token_id="t2", service_account=True, email="x@example.com")
    assert actor_of(service) == {"type": "service_account", "id": "t2", "email": None}
    assert actor_of(Identity.system("o1")) == {"type": "system", "id": None, "email": None}


def test_an_entry_has_exactly_the_contract_keys() -> None:
    request = Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/api/jobs/",
            "headers": [
                (b"x-forwarded-for", b"198.51.100.7, 10.0.0.2"),
                (b"user-agent", b"x" * 2000),
                (b"x-request-id", b"rid-1"),
            ],
            "client": ("10.0.0.2", 1234),
        }
    )
    entry = new_entry(USER, request, "jobs.create", "job", "j1")
    assert set(entry) == {
        "id",
        "timestamp",
        "organisation_id",
        "actor",
        "action",
        "target",
        "outcome",
        "request_id",
        "ip",
        "user_agent",
    }
    assert (entry["organisation_id"], entry["ip"], entry["request_id"]) == ("o1", "198.51.100.7", "rid-1")
    assert entry["target"] == {"type": "job", "id": "j1"} and entry["outcome"] == "success"
    assert len(entry["user_agent"]) == 512
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["timestamp"])
    message = outbox_message(entry)
    assert message.subject == "audit.o1" and str(message.msg_id) == entry["id"]  # de-duplicated by id
