"""Resource use cases: catalog-checked, config-validated, encrypted at rest, tenant scoped.

Also the one place other domains resolve `{slot: resource_id}` bindings (`check_bindings`) and the
worker decrypts a row's data (`decrypt`). Viewers read secret fields masked (`masking.py`); a mask
sent back keeps the stored secret."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.caller import Member
from icp_common.errors import NotFound, Unprocessable

from ..catalog.loader import NON_RESOURCE_KINDS, CatalogIndex
from ..crypto import Cipher
from . import masking, repository
from .models import Resource
from .schemas import ResourceDetail, ResourceRead


def not_found(resource_id: uuid.UUID | str) -> NotFound:
    return NotFound(f"Resource {resource_id} not found")


def read(row: Resource) -> ResourceRead:
    return ResourceRead(
        id=row.id,
        org_id=row.org_id,
        kind=row.kind,
        key=row.key,
        name=row.name,
        encrypted=row.encrypted,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def decrypt(cipher: Cipher, row: Resource) -> dict[str, Any]:
    """The decoded `data` of a resource row."""
    plain = cipher.open(row.data, row.wrapped_key, row.key_id, org_id=row.org_id, row_id=row.id)
    value: dict[str, Any] = json.loads(plain)
    return value


def _seal(cipher: Cipher, row: Resource, data: dict[str, Any]) -> None:
    sealed = cipher.seal(json.dumps(data, separators=(",", ":")).encode(), org_id=row.org_id, row_id=row.id)
    row.data, row.wrapped_key, row.key_id = sealed.data, sealed.wrapped_key, sealed.key_id


def validate(catalog: CatalogIndex, kind: str, key: str, data: dict[str, Any]) -> None:
    actual = catalog.kind_of(key)
    if actual is None or actual in NON_RESOURCE_KINDS:
        raise Unprocessable(f"Unknown resource key: {key}")
    if actual != kind:
        raise Unprocessable(f"Resource key '{key}' is of kind '{actual}', not '{kind}'")
    errors = catalog.validate_config(key, data)
    if errors:
        raise Unprocessable([{**e, "loc": ["body", "data", *e["loc"]]} for e in errors])


async def list_resources(session: AsyncSession, caller: Member, kind: str | None) -> list[ResourceRead]:
    return [read(r) for r in await repository.list_for_org(session, caller.org_id, kind)]


async def get(
    session: AsyncSession, caller: Member, catalog: CatalogIndex, cipher: Cipher, resource_id: uuid.UUID
) -> ResourceDetail:
    """The resource with its data; secret fields masked unless the caller is an editor or admin."""
    row = await repository.get(session, caller.org_id, resource_id)
    if row is None:
        raise not_found(resource_id)
    data = decrypt(cipher, row)
    if not masking.sees_secrets(caller.identity):
        schema = (catalog.dump.get(row.key) or {}).get("config_schema")
        data = masking.mask(data, masking.secret_fields(schema))
    return ResourceDetail(**read(row).model_dump(), data=data)


async def create(
    session: AsyncSession,
    caller: Member,
    catalog: CatalogIndex,
    cipher: Cipher,
    *,
    kind: str,
    key: str,
    name: str,
    data: dict[str, Any],
    encrypted: bool,
) -> ResourceRead:
    data = masking.restore(data, {})  # nothing stored yet: a mask is refused
    validate(catalog, kind, key, data)
    row = Resource(id=uuid.uuid4(), org_id=caller.org_id, kind=kind, key=key, name=name, encrypted=encrypted)
    _seal(cipher, row, data)
    return read(await repository.add(session, row))


async def update(
    session: AsyncSession,
    caller: Member,
    catalog: CatalogIndex,
    cipher: Cipher,
    resource_id: uuid.UUID,
    *,
    kind: str,
    key: str,
    name: str,
    data: dict[str, Any],
    encrypted: bool | None,
) -> ResourceRead:
    row = await repository.get(session, caller.org_id, resource_id)
    if row is None:
        raise not_found(resource_id)
    data = masking.restore(data, decrypt(cipher, row))  # a mask sent back keeps the stored secret
    validate(catalog, kind, key, data)
    row.kind, row.key, row.name = kind, key, name
    if encrypted is not None:
        row.encrypted = encrypted
    _seal(cipher, row, data)
    await repository.flush(session)
    return read(row)


async def delete(session: AsyncSession, caller: Member, resource_id: uuid.UUID) -> None:
    """Delete a resource; its bindings to sources, assets and destinations go with it."""
    if not await repository.delete_one(session, caller.org_id, resource_id):
        raise not_found(resource_id)


async def check_bindings(
    session: AsyncSession,
    org_id: uuid.UUID,
    catalog: CatalogIndex,
    component_key: str,
    bindings: Mapping[str, uuid.UUID],
    *,
    slots: Mapping[str, str],
) -> dict[str, uuid.UUID]:
    """Validate `{slot: resource_id}` for a component whose declared slots are `slots`
    (slot -> expected resource key): unknown slot or wrong resource type -> 422, resource not in
    the organisation -> 404."""
    rows = await repository.get_many(session, org_id, bindings.values())
    for slot, resource_id in bindings.items():
        if slot not in slots:
            expected = ", ".join(sorted(slots)) or "none"
            raise Unprocessable(f"Unknown resource slot '{slot}' for {component_key} (slots: {expected})")
        row = rows.get(resource_id)
        if row is None:
            raise not_found(resource_id)
        if not catalog.resource_fits(row.key, slots[slot]):
            raise Unprocessable(
                f"Resource {resource_id} is a {row.key}; slot '{slot}' of {component_key} expects {slots[slot]}"
            )
    return dict(bindings)
