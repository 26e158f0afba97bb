"""End-to-end tests: black-box, through Traefik, against `interloper-stack up` in a temp dir.

The `stack` fixture (session-scoped) comes from icp_stack.pytest_plugin, loaded for the whole
repository by the root pytest configuration. Extra launcher arguments: INTERLOPER_TEST_STACK_ARGS
(e.g. "--without agent"); READY timeout: INTERLOPER_TEST_STACK_TIMEOUT (seconds, default 180).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from icp_stack.pytest_plugin import StackHandle


@pytest.fixture(scope="session")
def base_url(stack: StackHandle) -> str:
    """The public URL of the stack (Traefik's web entrypoint)."""
    return stack.base_url


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    """A fresh client (own cookie jar) talking to the stack through Traefik."""
    with httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=False) as client:
        yield client


@pytest.fixture
async def aapi(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The async variant of `api`."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, follow_redirects=False) as client:
        yield client
