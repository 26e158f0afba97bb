"""Secret fields of resource data are masked for viewers (issue 15, item 6): from the attacker's
side (a viewer of the same organisation), and the mask sent back never overwrites a secret."""

from __future__ import annotations

from typing import Any

import pytest

from icp_common.identity import Identity
from icp_pipelines.resources.masking import MASK, mask, restore, secret_fields, sees_secrets

from ..factories import create_resource

SECRETS = {"client_secret": "s3cret-client", "refresh_token": "s3cret-refresh"}
DATA = {"client_id": "cid", **SECRETS, "region": "na"}


async def connection(clients: Any) -> dict[str, Any]:
    return await create_resource(clients.editor, kind="connection", key="demo_ads_connection", name="Ads", data=DATA)


async def test_a_viewer_gets_the_secret_fields_masked(clients) -> None:
    created = await connection(clients)
    r = await clients.viewer.get(f"/api/resources/{created['id']}")
    assert r.status_code == 200
    assert r.json()["data"] == {"client_id": "cid", "client_secret": MASK, "refresh_token": MASK, "region": "na"}


async def test_a_viewer_never_sees_a_secret_in_any_resource_response(clients) -> None:
    created = await connection(clients)
    answers = [
        await clients.viewer.get("/api/resources/"),
        await clients.viewer.get("/api/resources/?kind=connection"),
        await clients.viewer.get(f"/api/resources/{created['id']}"),
        await clients.viewer.put(f"/api/resources/{created['id']}", json={**created, "data": DATA}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 403]
    for answer in answers:
        assert not any(secret in answer.text for secret in SECRETS.values()), answer.request.url


@pytest.mark.parametrize("who", ["editor", "admin"])
async def test_editors_and_admins_keep_the_full_data(clients, who: str) -> None:
    created = await connection(clients)
    r = await getattr(clients, who).get(f"/api/resources/{created['id']}")
    assert r.json()["data"] == DATA


async def test_a_mask_sent_back_keeps_the_stored_secret(clients) -> None:
    created = await connection(clients)
    masked = (await clients.viewer.get(f"/api/resources/{created['id']}")).json()["data"]
    body = {"kind": "connection", "key": "demo_ads_connection", "name": "Ads"}
    r = await clients.editor.put(
        f"/api/resources/{created['id']}", json={**body, "data": {**masked, "refresh_token": "new", "client_id": "c2"}}
    )
    assert r.status_code == 200, r.text
    stored = (await clients.editor.get(f"/api/resources/{created['id']}")).json()["data"]
    assert stored == {"client_id": "c2", "client_secret": "s3cret-client", "refresh_token": "new", "region": "na"}


async def test_a_mask_without_a_stored_value_is_refused(clients) -> None:
    body = {"kind": "connection", "key": "demo_ads_connection", "name": "Ads"}
    r = await clients.editor.post("/api/resources/", json={**body, "data": {**DATA, "client_secret": MASK}})
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert (error["type"], error["loc"]) == ("masked_value", ["body", "data", "client_secret"])
    assert (await clients.editor.get("/api/resources/")).json() == []

    created = await connection(clients)
    r = await clients.editor.put(
        f"/api/resources/{created['id']}", json={**body, "data": {**DATA, "extra": {"token": MASK}}}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "data", "extra", "token"]
    assert (await clients.editor.get(f"/api/resources/{created['id']}")).json()["data"] == DATA


# ------------------------------------------------------------------------- the rules themselves


def test_secret_fields_come_from_the_catalog_schema() -> None:
    schema = {
        "properties": {
            "a": {"type": "string", "format": "password"},
            "b": {"type": "string", "writeOnly": True},
            "c": {"type": "string", "x-widget": "password"},
            "d": {"type": "string", "x-widget": "text"},
        }
    }
    assert secret_fields(schema) == {"a", "b", "c"}
    assert secret_fields(None) == secret_fields({"properties": "x"}) == set()


def test_well_known_names_are_masked_at_any_depth() -> None:
    data = {
        "host": "db",
        "password": "p",
        "api_key": "k",
        "apiKey": "k2",
        "developer_token": "t",
        "service": {"private_key": "pk", "project": "x", "items": [{"access_token": "a", "id": 1}]},
        "custom": "hidden by the schema",
        "empty_secret": "",
        "tokenizer": "not a secret",
        "destination_key": "not a secret either",
    }
    assert mask(data, {"custom"}) == {
        "host": "db",
        "password": MASK,
        "api_key": MASK,
        "apiKey": MASK,
        "developer_token": MASK,
        "service": {"private_key": MASK, "project": "x", "items": [{"access_token": MASK, "id": 1}]},
        "custom": MASK,
        "empty_secret": "",
        "tokenizer": "not a secret",
        "destination_key": "not a secret either",
    }


def test_restore_puts_back_what_the_mask_stands_for() -> None:
    stored = {"password": "p", "service": {"private_key": "pk"}, "list": [{"token": "t"}]}
    sent = {"password": MASK, "service": {"private_key": MASK, "new": 1}, "list": [{"token": MASK}], "x": 2}
    assert restore(sent, stored) == {
        "password": "p",
        "service": {"private_key": "pk", "new": 1},
        "list": [{"token": "t"}],
        "x": 2,
    }


def test_only_editors_admins_and_the_system_see_secrets() -> None:
    def who(role: str | None, state: str = "ok") -> Identity:
        return Identity(state=state, user_id="u", org_id="o", org_exists=True, role=role)  # type: ignore[arg-type]

    assert [sees_secrets(who(r)) for r in ("viewer", None, "editor", "admin")] == [False, False, True, True]
    assert sees_secrets(who(None, "system"))
