"""Fixtures of the OAuth and external look-up tests: the fake provider server (one per session,
reset before every test) and apps whose provider base URLs all point at it, with their lifespan
running (it owns the shared outbound HTTP client)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from icp_common.identity import Identity
from icp_pipelines.app import create_app
from icp_pipelines.oauth.settings import OAuthSettings
from icp_testing.fake_providers import FakeProviders, serve_in_thread

from ..conftest import BASE_URL, SignedIdentityTransport, World

TIMEOUT = 0.5
CONCURRENCY = 3


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProviders]:
    with serve_in_thread(FakeProviders()) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_fake(fake: FakeProviders) -> None:
    fake.reset()


@asynccontextmanager
async def running_app(settings: Any, resources: Any, oauth: OAuthSettings) -> AsyncIterator[FastAPI]:
    """The pipelines app with these provider settings, its lifespan running (the shared HTTP client)."""
    app = create_app(settings.model_copy(update={"oauth": oauth}), resources=resources)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def provider_app(settings: Any, resources: Any, fake: FakeProviders) -> AsyncIterator[FastAPI]:
    """Every provider configured, every base URL at the fake, a short timeout."""
    oauth = fake.settings(timeout_seconds=TIMEOUT, concurrency=CONCURRENCY)
    async with running_app(settings, resources, oauth) as app:
        yield app


@pytest.fixture(scope="session")
async def bare_app(settings: Any, resources: Any, fake: FakeProviders) -> AsyncIterator[FastAPI]:
    """Base URLs at the fake, but no provider app configured."""
    oauth = fake.settings(timeout_seconds=TIMEOUT, **dict.fromkeys(FakeProviders.credentials(), ""))
    async with running_app(settings, resources, oauth) as app:
        yield app


def client(app: FastAPI, identity: Identity | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=SignedIdentityTransport(app, identity), base_url=BASE_URL)


@pytest.fixture
async def anonymous(provider_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client(provider_app) as c:
        yield c


@pytest.fixture
async def viewer(provider_app: FastAPI, world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with client(provider_app, world.viewer) as c:
        yield c


@pytest.fixture
async def editor(provider_app: FastAPI, world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with client(provider_app, world.editor) as c:
        yield c
