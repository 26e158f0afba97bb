"""`/api/catalog` (spec 2.6) and `/api/specs` (web UI contract): the prebuilt dump, no authentication."""

from __future__ import annotations

from fastapi import APIRouter, Response

from icp_common.errors import NotFound

from ..deps import CatalogDep

router = APIRouter(tags=["catalog"])

JSON = "application/json"


@router.get("/api/catalog/")
async def catalog(catalog: CatalogDep) -> Response:
    """Every catalog definition by key (spec 7.2)."""
    return Response(catalog.dump_bytes, media_type=JSON)


@router.get("/api/specs")
@router.get("/api/specs/", include_in_schema=False)
async def specs(catalog: CatalogDep) -> Response:
    """The same body as `GET /api/catalog/` (what the web UI loads)."""
    return Response(catalog.dump_bytes, media_type=JSON)


@router.get("/api/catalog/kind/{kind}")
async def catalog_kind(kind: str, catalog: CatalogDep) -> Response:
    """Definitions of one kind (`source`, `asset`, `destination`, `connection`, `config`, ...); unknown -> {}."""
    return Response(catalog.kind_bytes.get(kind, b"{}"), media_type=JSON)


@router.get("/api/catalog/{key}")
async def catalog_entry(key: str, catalog: CatalogDep) -> Response:
    body = catalog.entry_bytes.get(key)
    if body is None:
        raise NotFound(f"Component '{key}' not found in catalog")
    return Response(body, media_type=JSON)
