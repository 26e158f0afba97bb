"""The typed caller parsed at the edge: UUIDs and a Role from the verified assertion, the role
check's precedence kept, and an assertion whose ids are not UUIDs refused (401), never a 500."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from icp_common.caller import AdminCaller, Caller, CallerDep, Member, Role, caller_of, member_of
from icp_common.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from icp_common.identity import IDENTITY_HEADER, Identity, IdentitySigner
from icp_common.web import create_service_app

SIGNER = IdentitySigner(b"caller-tests", audience="test")
USER, SESSION, ORG = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def identity(**changes: object) -> Identity:
    values: dict[str, object] = {
        "state": "ok",
        "user_id": str(USER),
        "session_id": str(SESSION),
        "org_id": str(ORG),
        "org_exists": True,
        "role": "editor",
        "email": "ada@example.com",
    }
    return Identity(**{**values, **changes})  # type: ignore[arg-type]


def test_caller_has_typed_ids() -> None:
    caller = caller_of(identity())
    assert (caller.user_id, caller.session_id, caller.org_id, caller.role) == (USER, SESSION, ORG, Role.EDITOR)
    assert caller.user == USER and caller.session == SESSION and caller.email == "ada@example.com"
    assert not caller.is_system
    no_org = caller_of(identity(org_id=None, org_exists=False, role=None))
    assert (no_org.org_id, no_org.role) == (None, None)


def test_member_passes_the_role_check_in_the_contract_order() -> None:
    member = member_of(identity(), Role.VIEWER)
    assert isinstance(member, Member) and isinstance(member, Caller)
    assert (member.org_id, member.role) == (ORG, Role.EDITOR)
    with pytest.raises(Unauthenticated):
        member_of(Identity.anonymous(), Role.VIEWER)
    with pytest.raises(InvalidInput, match="No organisation selected"):
        member_of(identity(org_id=None), Role.VIEWER)
    with pytest.raises(NotFound):
        member_of(identity(org_exists=False), Role.VIEWER)
    with pytest.raises(Forbidden, match="Not a member"):
        member_of(identity(role=None), Role.VIEWER)
    with pytest.raises(Forbidden, match="Requires admin"):
        member_of(identity(), Role.ADMIN)
    with pytest.raises(Forbidden):
        member_of(identity(role="owner"), Role.VIEWER)  # an unknown role grants nothing


def test_the_system_is_an_admin_member_without_a_user() -> None:
    system = member_of(Identity.system(str(ORG)), Role.ADMIN)
    assert system.is_system and (system.org_id, system.role, system.user_id) == (ORG, Role.ADMIN, None)
    with pytest.raises(Unauthenticated, match="No user"):
        _ = system.user
    with pytest.raises(InvalidInput):
        member_of(Identity.system(), Role.VIEWER)


@pytest.mark.parametrize("field", ["user_id", "session_id", "org_id"])
def test_ids_that_are_not_uuids_are_unauthenticated(field: str) -> None:
    with pytest.raises(Unauthenticated, match="Malformed caller identity"):
        caller_of(identity(**{field: "not-a-uuid"}))


def build_app() -> FastAPI:
    app = create_service_app("test", signer=SIGNER)

    @app.get("/me")
    async def me(caller: CallerDep) -> dict[str, str | None]:
        return {"user_id": str(caller.user_id), "org_id": str(caller.org_id) if caller.org_id else None}

    @app.delete("/things")
    async def delete(caller: AdminCaller) -> dict[str, str]:
        return {"org_id": str(caller.org_id), "role": caller.role.value}

    return app


async def call(method: str, path: str, asserted: Identity | None) -> httpx.Response:
    headers = {IDENTITY_HEADER: SIGNER.sign(asserted)} if asserted else {}
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc", headers=headers) as client:
        return await client.request(method, path)


async def test_route_dependencies() -> None:
    r = await call("GET", "/me", identity())
    assert r.status_code == 200 and r.json() == {"user_id": str(USER), "org_id": str(ORG)}
    r = await call("GET", "/me", None)
    assert r.status_code == 401 and r.json() == {"detail": "Not authenticated"}
    r = await call("DELETE", "/things", identity())
    assert r.status_code == 403 and r.json() == {"detail": "Requires admin role or higher"}
    r = await call("DELETE", "/things", identity(role="admin"))
    assert r.json() == {"org_id": str(ORG), "role": "admin"}


async def test_a_signed_assertion_with_malformed_ids_is_401_not_500() -> None:
    r = await call("GET", "/me", identity(user_id="u1"))
    assert r.status_code == 401 and r.json() == {"detail": "Malformed caller identity"}
    r = await call("DELETE", "/things", identity(role="admin", org_id="../other-org"))
    assert r.status_code == 401 and r.json() == {"detail": "Malformed caller identity"}
