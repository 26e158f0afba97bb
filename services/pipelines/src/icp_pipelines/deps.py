"""FastAPI dependencies of the pipelines service: unit of work, settings, catalog, cipher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from icp_common.db import unit_of_work

from .catalog.loader import CatalogIndex
from .crypto import Cipher
from .settings import Settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent (scope="function")."""
    sessions = request.app.state.resources.sessions
    async with unit_of_work(sessions) as session:
        yield session


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_catalog(request: Request) -> CatalogIndex:
    catalog: CatalogIndex = request.app.state.catalog
    return catalog


async def get_cipher(request: Request) -> Cipher:
    cipher: Cipher = request.app.state.cipher
    return cipher


SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[CatalogIndex, Depends(get_catalog)]
CipherDep = Annotated[Cipher, Depends(get_cipher)]
