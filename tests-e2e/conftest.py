"""End-to-end tests: black-box, through Traefik, against `interloper-stack up` in a temp dir.

The `stack` fixture (session-scoped) comes from icp_stack.pytest_plugin, loaded for the whole
repository by the root pytest configuration. Extra launcher arguments: INTERLOPER_TEST_STACK_ARGS
(e.g. "--without agent"); READY timeout: INTERLOPER_TEST_STACK_TIMEOUT (seconds, default 180).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from icp_stack.pytest_plugin import StackHandle

# Helper modules beside the tests (replicas.py): --import-mode=importlib adds no directory to sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))


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


# The newcomer's default: no GOOGLE_API_KEY, so the assistant has no model. test_agent.py gives
# the session's `stack` a scripted model, hence a second, smaller stack for this case.
MODEL_VARIABLES = ("INTERLOPER_AGENT_MODEL", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")


@pytest.fixture(scope="session")
def stack_without_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    """`interloper-stack up` without a model for the assistant (and without worker, scheduler
    and notifications, which these tests do not need)."""
    import os

    from icp_stack.ports import free_port
    from icp_stack.pytest_plugin import (
        STACK_TIMEOUT_ENV,
        infra_tmp_dir,
        remove_infra_tmp_dir,
        start_stack,
        stop_stack_process,
    )

    base = infra_tmp_dir(tmp_path_factory, "stack-no-model")
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    handle = start_stack(
        base / "data",
        free_port(),
        base / "stack.log",
        ["--without", "pipelines-worker,pipelines-scheduler,notifications"],
        timeout=float(os.environ.get(STACK_TIMEOUT_ENV, "180")),
        env=env,
    )
    try:
        yield handle
    finally:
        stop_stack_process(handle.process)
    remove_infra_tmp_dir(base)
