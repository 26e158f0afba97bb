"""The testcontainers path of the fixtures (INTERLOPER_TEST_INFRA=docker) runs the same versions as
the embedded binaries, and its package is declared. No Docker engine is needed: the images are
compared with what the binaries say about themselves."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from icp_stack.infra.nats import nats_server_binary
from icp_stack.infra.postgres import bin_dir
from icp_stack.pytest_plugin import INFRA_ENV, docker_nats_image, docker_postgres_image, infra_mode

ROOT = Path(__file__).resolve().parents[3]


def _version(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    assert found, out
    return found.group(0)


def test_postgres_image_is_the_embedded_binarys_major(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERLOPER_TEST_POSTGRES_IMAGE", raising=False)
    major = _version([str(bin_dir() / "postgres"), "--version"]).split(".")[0]
    assert docker_postgres_image() == f"postgres:{major}-alpine"
    monkeypatch.setenv("INTERLOPER_TEST_POSTGRES_IMAGE", "registry.example/postgres:x")
    assert docker_postgres_image() == "registry.example/postgres:x"


def test_nats_image_is_the_embedded_binarys_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERLOPER_TEST_NATS_IMAGE", raising=False)
    version = _version([str(nats_server_binary()), "--version"])
    assert docker_nats_image() == f"nats:{version}-alpine"


def test_testcontainers_is_declared_in_the_dev_group() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dev = [re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0] for d in root["dependency-groups"]["dev"]]
    assert "testcontainers" in dev
    assert importlib.util.find_spec("testcontainers.postgres") is not None
    assert importlib.util.find_spec("testcontainers.core.container") is not None


def test_embedded_is_the_default_even_where_docker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installing testcontainers must not move `make test` onto containers by itself."""
    import icp_stack.pytest_plugin as plugin

    monkeypatch.delenv(INFRA_ENV, raising=False)
    monkeypatch.setattr(plugin, "_docker_available", lambda: True)
    assert infra_mode() == "embedded"
    monkeypatch.setenv(INFRA_ENV, "auto")
    assert infra_mode() == "docker"
