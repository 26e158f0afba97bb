"""Deployment checks (`make deploy-check`, part of `make test`): the service images, the
docker compose stack and the Kubernetes manifests run the same services, commands, settings and
Traefik configuration as the local stack. No Docker engine or cluster is needed: files are
validated against their schemas, command lines are run in-process with their servers stubbed,
and the images' build steps and the compose commands are replayed as local processes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest
from deploylib import build_like_docker, service_images


@pytest.fixture(scope="session")
def built_venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every image's virtual environment, made by replaying the build stage of its Dockerfile
    (its COPY instructions and `uv sync` commands) in a temporary directory."""
    from concurrent.futures import ThreadPoolExecutor

    base = tmp_path_factory.mktemp("images")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {i.name: pool.submit(build_like_docker, i, base / i.name) for i in service_images()}
        return {name: f.result() for name, f in futures.items()}
