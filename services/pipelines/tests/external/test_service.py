"""The look-ups called directly (other settings than the apps' ones): unreachable providers,
bounded pagination and concurrency, TikTok without the platform's app, the helpers' contracts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from icp_common.errors import InvalidInput
from icp_pipelines.external import service
from icp_pipelines.external.schemas import GoogleAdsConnection, RefreshTokenConnection, TiktokAdsConnection
from icp_pipelines.external.upstream import bounded_map, collect_pages
from icp_pipelines.oauth.http import ProviderError, build_client
from icp_testing.fake_providers import DEVELOPER_TOKEN, REFRESH_TOKEN, TIKTOK_TOKEN, FakeProviders

APP = RefreshTokenConnection(client_id="id", client_secret="secret", refresh_token=REFRESH_TOKEN)


@pytest.fixture
async def http(fake: FakeProviders) -> AsyncIterator[httpx.AsyncClient]:
    async with build_client(fake.settings(timeout_seconds=2)) as client:
        yield client


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_unreachable_provider_is_a_502(http: httpx.AsyncClient, fake: FakeProviders) -> None:
    cfg = fake.settings(pinterest_url=closed_port_url())
    with pytest.raises(ProviderError) as failed:
        await service.pinterest_ads_accounts(http, cfg, APP)
    assert (failed.value.status_code, failed.value.detail) == (
        502,
        "Provider unreachable while fetching Pinterest Ads accounts.",
    )


async def test_pagination_stops_after_max_pages(http: httpx.AsyncClient, fake: FakeProviders) -> None:
    accounts = await service.pinterest_ads_accounts(http, fake.settings(max_pages=2), APP)
    assert len(accounts) == 4
    assert len(fake.to("/api.pinterest.com/v5/ad_accounts")) == 2


async def test_pagination_stops_when_a_cursor_comes_back(fake: FakeProviders) -> None:
    calls: list[str | None] = []

    async def page(cursor: str | None) -> tuple[list[int], str | None]:
        calls.append(cursor)
        return [len(calls)], "same"

    assert await collect_pages(10, "testing", page) == [1, 2]
    assert calls == [None, "same"]


async def test_concurrency_of_one_names_customers_one_by_one(http: httpx.AsyncClient, fake: FakeProviders) -> None:
    body = GoogleAdsConnection(
        client_id="id", client_secret="s", developer_token=DEVELOPER_TOKEN, refresh_token=REFRESH_TOKEN
    )
    customers = await service.google_ads_customers(http, fake.settings(concurrency=1), body)
    assert len(customers) == 5
    assert fake.max_in_flight["google-search"] == 1


async def test_tiktok_advertisers_need_the_platform_app(http: httpx.AsyncClient, fake: FakeProviders) -> None:
    cfg = fake.settings(tiktok_client_id="", tiktok_client_secret="")
    with pytest.raises(InvalidInput) as failed:
        await service.tiktok_ads_advertisers(http, cfg, TiktokAdsConnection(access_token=TIKTOK_TOKEN))
    assert failed.value.detail == "OAuth provider tiktok is not configured"
    assert fake.requests == []


async def test_bounded_map_keeps_order_and_raises_the_first_failure_itself() -> None:
    running = 0
    peak = 0

    async def square(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (5 - n))
        running -= 1
        return n * n

    assert await bounded_map(2, range(5), square) == [0, 1, 4, 9, 16]
    assert peak == 2

    cancelled: list[int] = []

    async def fail_on_one(n: int) -> int:
        if n == 1:
            raise KeyError("boom")
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        return n

    with pytest.raises(KeyError):
        await bounded_map(3, range(3), fail_on_one)
    assert sorted(cancelled) == [0, 2]
