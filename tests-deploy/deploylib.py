"""Helpers of the deployment checks: the workspace and its service packages, their settings
(environment variable names), their command lines (captured in-process), the compose file as
docker compose reads it (.env + interpolation) and the Kubernetes overlays as kustomize renders
them. Everything is derived from the repository itself, so a new service, setting or
subcommand is checked without editing this file."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER_DIR = ROOT / "deploy" / "docker"
K8S_DIR = ROOT / "deploy" / "k8s"
TRAEFIK_DIR = ROOT / "deploy" / "traefik"
SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
OVERLAYS = ("dev", "production")
# The oldest Kubernetes minor still commonly run and the newest that kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", "1.37.0")

# Variables read by a service that are not fields of its settings classes: the reference's
# names that the code reads from the environment or that a library reads itself.
OAUTH_PROVIDERS = ("AMAZON", "CRITEO", "FACEBOOK", "GOOGLE", "LINKEDIN", "MICROSOFT", "PINTEREST", "SNAPCHAT", "TIKTOK")
EXTERNAL_ENV: dict[str, tuple[str, ...]] = {
    # spec 1.4 / 3.5: ad-platform OAuth apps, read by the service behind /api/oauth (pipelines)
    **{
        f"{p}_{suffix}": ("pipelines",)
        for p in OAUTH_PROVIDERS
        for suffix in ("CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URI")
    },
    # google-genai reads these itself (Vertex AI mode of the agent's Gemini model)
    "GOOGLE_CLOUD_PROJECT": ("agent",),
    "GOOGLE_CLOUD_LOCATION": ("agent",),
}
EXTERNAL_SECRETS: dict[str, tuple[str, ...]] = {f"{p}_CLIENT_SECRET": ("pipelines",) for p in OAUTH_PROVIDERS}
# Names in .env.example that configure docker compose itself, not a service.
COMPOSE_ONLY_ENV = {
    "COMPOSE_PROFILES",
    "IMAGE_PREFIX",
    "IMAGE_TAG",
    "PUBLIC_BIND_ADDRESS",
    "PUBLIC_PORT",
    "PIPELINES_WORKER_REPLICAS",
    # Per-service credentials, handed to each service as its INTERLOPER_POSTGRES_* / INTERLOPER_NATS_*.
    "POSTGRES_IDENTITY_PASSWORD",
    "POSTGRES_PIPELINES_PASSWORD",
    "POSTGRES_NOTIFICATIONS_PASSWORD",
    "POSTGRES_AGENT_PASSWORD",
    "NATS_ADMIN_PASSWORD",
    "NATS_IDENTITY_PASSWORD",
    "NATS_PIPELINES_PASSWORD",
    "NATS_GATEWAY_PASSWORD",
    "NATS_NOTIFICATIONS_PASSWORD",
}


# ------------------------------------------------------------------------------ the workspace


@dataclass(frozen=True)
class Package:
    name: str
    dir: Path
    scripts: dict[str, str]

    @property
    def rel(self) -> str:
        return self.dir.relative_to(ROOT).as_posix()

    @property
    def module(self) -> str:
        return self.name.replace("-", "_")


@functools.cache
def workspace() -> dict[str, Package]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages: dict[str, Package] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for directory in sorted(ROOT.glob(pattern)):
            pyproject = directory / "pyproject.toml"
            if not pyproject.exists():
                continue
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
            packages[project["name"]] = Package(project["name"], directory, dict(project.get("scripts", {})))
    return packages


@functools.cache
def lock_packages() -> dict[str, dict[str, Any]]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    return {p["name"]: p for p in lock["package"]}


def lock_version(name: str) -> str:
    return str(lock_packages()[name]["version"])


def workspace_closure(name: str) -> set[str]:
    """`name` and the workspace packages it depends on, transitively (from uv.lock)."""
    members = set(workspace())
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for dep in lock_packages()[current].get("dependencies", []):
            if dep["name"] in members:
                todo.append(dep["name"])
    return seen


@dataclass(frozen=True)
class ServiceImage:
    """A service package with its console script and its image."""

    name: str
    package: Package
    script: str

    @property
    def module(self) -> str:
        return self.package.module

    @property
    def dockerfile(self) -> Path:
        return DOCKER_DIR / f"{self.name}.Dockerfile"

    @property
    def image(self) -> str:
        return f"interloper/{self.name}"

    def settings_class(self) -> type:
        return importlib.import_module(f"{self.module}.settings").Settings  # type: ignore[no-any-return]


@functools.cache
def service_images() -> tuple[ServiceImage, ...]:
    """Every package with an `interloper-<name>` console script (the local stack's launcher and the
    command-line client are not services)."""
    images = []
    for package in workspace().values():
        for script in package.scripts:
            if script.startswith("interloper-") and script not in ("interloper-stack", "interloper-ctl"):
                images.append(ServiceImage(script.removeprefix("interloper-"), package, script))
    return tuple(sorted(images, key=lambda i: i.name))


def image_by_name(name: str) -> ServiceImage:
    return {i.name: i for i in service_images()}[name]


def image_by_script(script: str) -> ServiceImage:
    return {i.script: i for i in service_images()}[script]


# ------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class EnvVar:
    names: tuple[str, ...]
    """The accepted names (several for a field with alias choices)."""
    secret: bool
    default: Any


def _is_secret(annotation: Any) -> bool:
    from pydantic import SecretStr

    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in getattr(annotation, "__args__", ()) or ())


def settings_vars(cls: type) -> list[EnvVar]:
    """The environment variables of a pydantic-settings class, nested groups included."""
    from pydantic import AliasChoices
    from pydantic_settings import BaseSettings

    prefix = str(cls.model_config.get("env_prefix", ""))  # type: ignore[attr-defined]
    result: list[EnvVar] = []
    for name, info in cls.model_fields.items():  # type: ignore[attr-defined]
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            result.extend(settings_vars(annotation))
            continue
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names = tuple(str(c).upper() for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names = (alias.upper(),)
        else:
            names = ((prefix + name).upper(),)
        default = info.default_factory() if info.default_factory is not None else info.default
        result.append(EnvVar(names, _is_secret(annotation), default))
    return result


def settings_names(cls: type) -> set[str]:
    return {n for var in settings_vars(cls) for n in var.names}


def service_env_names(image: ServiceImage) -> set[str]:
    """What a process of this image reads: its settings plus the external names it reads."""
    extra = {name for name, owners in EXTERNAL_ENV.items() if image.name in owners}
    return settings_names(image.settings_class()) | extra


def all_service_env_names() -> set[str]:
    return set().union(*(service_env_names(i) for i in service_images()))


# ------------------------------------------------------------------------ command lines, in-process


class _ParserCaptured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def entry_point(script: str) -> Callable[..., Any]:
    target = image_by_script(script).package.scripts[script]
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


@functools.cache
def cli_parser(script: str) -> argparse.ArgumentParser:
    """The argparse parser that `script` builds (captured when it parses its arguments)."""

    def capture(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _ParserCaptured(self)

    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture):
        try:
            entry_point(script)([])
        except _ParserCaptured as exc:
            return exc.parser
    raise AssertionError(f"{script} did not parse its arguments")


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def subcommands(script: str) -> set[str]:
    return set(subparsers(cli_parser(script)))


@dataclass
class Invocation:
    """What a command line did when run in-process with its servers and migrations stubbed."""

    argv: list[str]
    served: list[tuple[Any, str, int]] = field(default_factory=list)
    """(ASGI app, host, port) given to serve_http."""
    migrated: list[tuple[Any, str, Path]] = field(default_factory=list)
    """(PostgresSettings, service, migrations dir) given to prepare_database."""
    smtp: list[tuple[str, int, Path]] = field(default_factory=list)
    """(host, port, directory) of the mail catcher."""
    exit_code: int | None = None


def run_command(script: str, argv: list[str], env: Mapping[str, str], *, stub: bool = True) -> Invocation:
    """Run `script argv` in this process with exactly `env` as its environment; the HTTP
    server, the migrations and the mail catcher are recorded instead of started (unless
    `stub` is false: then the command really runs, e.g. a migration against a test server)."""
    inv = Invocation(list(argv))
    cli_module = importlib.import_module(image_by_script(script).package.scripts[script].partition(":")[0])

    def fake_serve(app: Any, host: str, port: int) -> None:
        inv.served.append((app, host, port))

    async def fake_prepare(settings: Any, service: str, migrations_dir: Path) -> str:
        inv.migrated.append((settings, service, Path(migrations_dir)))
        return settings.url(settings.database_name(service))

    async def fake_smtp(host: str, port: int, directory: Path, stop: Any, *args: Any, **kwargs: Any) -> None:
        inv.smtp.append((host, port, Path(directory)))

    async def fake_until_signalled(main: Callable[[asyncio.Event], Any]) -> None:
        await main(asyncio.Event())

    patches: list[Any] = [mock.patch.dict(os.environ, dict(env), clear=True)]
    stubs = (
        (
            ("serve_http", fake_serve),
            ("prepare_database", fake_prepare),
            ("run_until_signalled", fake_until_signalled),
        )
        if stub
        else ()
    )
    for name, fake in (
        *stubs,
        ("configure_logging", lambda *a, **k: None),
    ):
        if hasattr(cli_module, name):
            patches.append(mock.patch.object(cli_module, name, fake))
    patches.append(mock.patch("icp_common.cli.configure_logging", lambda *a, **k: None))
    if stub:
        with contextlib.suppress(ImportError):
            mailcatcher = importlib.import_module(f"{cli_module.__package__}.mailcatcher")
            patches.append(mock.patch.object(mailcatcher, "serve", fake_smtp))
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        try:
            entry_point(script)(list(argv))
        except SystemExit as exc:
            inv.exit_code = exc.code if isinstance(exc.code, int) else 1
    return inv


def asgi_status(app: Any, path: str) -> int:
    """Status of GET `path` on an ASGI app, without running its lifespan (nothing connects)."""
    import httpx

    async def get() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
            return (await client.get(path)).status_code

    loop = asyncio.new_event_loop()  # not asyncio.run: leave the thread's current loop alone
    try:
        return loop.run_until_complete(get())
    finally:
        loop.close()


# --------------------------------------------------------------------------------- docker compose


class InterpolationError(ValueError):
    pass


_VAR = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_EXPR = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """docker compose's variable interpolation (${VAR}, ${VAR:-default}, ${VAR:?error}, $$...)."""

    def replace(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        expr = _EXPR.match(match.group("braced"))
        if expr is None:
            raise InterpolationError(f"invalid interpolation format: {match.group(0)}")
        name, op, arg = expr.group("name"), expr.group("op"), expr.group("arg") or ""
        present, nonempty = name in env, bool(env.get(name))
        if op is None:
            return env.get(name, "")
        if op in (":-", "-"):
            return env[name] if (nonempty if op == ":-" else present) else interpolate(arg, env)
        if op in (":?", "?"):
            if not (nonempty if op == ":?" else present):
                raise InterpolationError(f"{name}: {arg}")
            return env[name]
        return interpolate(arg, env) if (nonempty if op == ":+" else present) else ""

    return _VAR.sub(replace, value)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    return node


def parse_dotenv(text: str) -> dict[str, str]:
    """A .env file as docker compose reads it (comments, `export`, quotes, inline comments)."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"bad .env line: {raw!r}")
        name, value = name.strip(), value.strip()
        if value[:1] == "'" and value.rfind("'") > 0:
            value = value[1 : value.rfind("'")]
        elif value[:1] == '"' and value.rfind('"') > 0:
            value = value[1 : value.rfind('"')].encode().decode("unicode_escape")
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        result[name] = value
    return result


def commented_names(text: str) -> set[str]:
    """Names shown as `# NAME=...` (documented defaults) in a .env file."""
    return set(re.findall(r"^#\s*([A-Z][A-Z0-9_]*)=", text, re.M))


@functools.cache
def env_example() -> dict[str, str]:
    return parse_dotenv(ENV_EXAMPLE.read_text(encoding="utf-8"))


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml after interpolation with `env` (default: .env.example as .env)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return interpolate_tree(raw, env_example() if env is None else env)  # type: ignore[no-any-return]


def compose_service_env(service: Mapping[str, Any], dotenv: Mapping[str, str]) -> dict[str, str]:
    """The environment a compose service's container gets: env_file(s), then `environment`."""
    env: dict[str, str] = {}
    env_files = service.get("env_file", [])
    for entry in [env_files] if isinstance(env_files, str | dict) else env_files:
        path = entry if isinstance(entry, str) else entry["path"]
        if path == ".env":
            env.update(dotenv)
        else:
            env.update(parse_dotenv((ROOT / path).read_text(encoding="utf-8")))
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    env.update({k: "" if v is None else str(v) for k, v in environment.items()})
    return env


def compose_image(service: Mapping[str, Any]) -> ServiceImage | None:
    """Our image this compose service runs (None for third-party images)."""
    build = service.get("build")
    if not build:
        return None
    dockerfile = Path(build["dockerfile"]).name
    for image in service_images():
        if image.dockerfile.name == dockerfile:
            return image
    raise AssertionError(f"unknown Dockerfile {build['dockerfile']}")


# ------------------------------------------------------------------------------------- Dockerfiles


@dataclass
class Instruction:
    cmd: str
    value: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]


@dataclass
class Dockerfile:
    args: dict[str, str]
    """Global ARGs (before the first FROM) and their defaults."""
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def resolve(self, text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.args.get(m.group(1), m.group(0)), text)


def parse_dockerfile(path: Path) -> Dockerfile:
    lines: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        lines.append((start, buffer + stripped))
        buffer = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in lines:
        cmd, _, value = line.partition(" ")
        cmd, value = cmd.upper(), value.strip()
        if cmd == "FROM":
            parts = value.split()
            base = parts[0]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages and cmd == "ARG":
            key, _, default = value.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append(Instruction(cmd, value, number))
    return Dockerfile(args, stages)


def exec_form(value: str) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD."""
    import json

    parsed = json.loads(value)
    assert isinstance(parsed, list), value
    return [str(v) for v in parsed]


def env_instructions(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for inst in stage.all("ENV"):
        for token in shlex.split(inst.value):
            key, _, val = token.partition("=")
            env[key] = val
    return env


def uv_binary() -> str:
    found = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    assert Path(found).exists(), "uv not found"
    return found


def build_like_docker(image: ServiceImage, workdir: Path) -> Path:
    """Replay the build stage of the image's Dockerfile in `workdir`: its COPY instructions
    from the repository, then its `uv sync` commands (offline when uv's cache has everything).
    Returns the virtual environment the runtime stage would contain."""
    dockerfile = parse_dockerfile(image.dockerfile)
    build = dockerfile.stage("build")
    src = workdir / "src"
    venv = workdir / "venv"
    current = Path("/")
    env = dict(os.environ)
    env.update(env_instructions(build))
    # No bytecode compilation here (the image does it; it only costs time).
    env.update({"UV_PROJECT_ENVIRONMENT": str(venv), "UV_COMPILE_BYTECODE": "0", "UV_PYTHON": sys.executable})
    env.pop("UV_LINK_MODE", None)
    env.pop("VIRTUAL_ENV", None)
    for inst in build.instructions:
        if inst.cmd == "WORKDIR":
            current = Path(inst.value)
            assert current == Path("/src"), "the build stage works in /src"
        elif inst.cmd == "COPY":
            tokens = [t for t in inst.value.split() if not t.startswith("--")]
            if inst.value.startswith("--from"):
                continue
            *sources, dest = tokens
            for source in sources:
                origin = ROOT / source
                assert origin.exists(), f"{image.dockerfile.name}:{inst.line}: COPY {source}: not in the repository"
                target = src / (dest.rstrip("/") if dest != "./" else "")
                if dest.endswith("/") or dest == "./" or len(sources) > 1:
                    target = target / origin.name
                target.parent.mkdir(parents=True, exist_ok=True)
                if origin.is_dir():
                    # As <Dockerfile>.dockerignore excludes them from the build context.
                    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", ".pytest_cache", ".mypy_cache")
                    shutil.copytree(origin, target, ignore=ignored)
                else:
                    shutil.copy2(origin, target)
        elif inst.cmd == "RUN":
            command = " ".join(t for t in inst.value.split() if not t.startswith("--mount="))
            assert command.startswith("uv "), f"unexpected RUN in the build stage: {command}"
            argv = [uv_binary(), *shlex.split(command)[1:]]
            proc = subprocess.run([*argv, "--offline"], cwd=src, env=env, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:  # something is missing from uv's cache: use the index
                proc = subprocess.run(argv, cwd=src, env=env, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{image.dockerfile.name}:{inst.line}: {command}\n{proc.stderr[-3000:]}"
    return venv


# ------------------------------------------------------------------------------------ Kubernetes


def kubectl() -> str:
    candidate = Path(sys.executable).parent / "kubectl"
    return str(candidate) if candidate.exists() else shutil.which("kubectl") or "kubectl"


@functools.cache
def render_overlay(overlay: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize deploy/k8s/overlays/<overlay>` (the real kustomize, as users run it)."""
    path = K8S_DIR / "overlays" / overlay if "/" not in overlay else ROOT / overlay
    proc = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def by_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def containers(workload: dict[str, Any], init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def image_of(container: dict[str, Any]) -> ServiceImage | None:
    """Our image a container runs (by the repository name, after any registry prefix)."""
    repo = container["image"].rsplit(":", 1)[0]
    for image in service_images():
        if repo == image.image or repo.endswith("/" + image.image):
            return image
    return None


def container_env(
    container: dict[str, Any], docs: tuple[dict[str, Any], ...], placeholders: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment kubelet gives `container`: envFrom ConfigMaps/Secrets, then env (values,
    configMapKeyRef, secretKeyRef). A key of a Secret absent from the render (created by the
    operator) takes its value from `placeholders`, else "placeholder"; an absent optional key
    of a rendered Secret is left out."""
    configmaps = by_kind(docs, "ConfigMap")
    secrets = {
        name: {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()} | dict(s.get("stringData", {}))
        for name, s in by_kind(docs, "Secret").items()
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]].get("data", {}))
        if "secretRef" in source:
            env.update(secrets.get(source["secretRef"]["name"], {}))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            env[item["name"]] = configmaps[ref["configMapKeyRef"]["name"]]["data"][ref["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            secret = secrets.get(key_ref["name"])
            if secret is None:
                env[item["name"]] = (placeholders or {}).get(key_ref["key"], "placeholder")
            elif key_ref["key"] in secret:
                env[item["name"]] = secret[key_ref["key"]]
            elif not key_ref.get("optional", False):
                raise AssertionError(f"{container['name']}: Secret {key_ref['name']} has no key {key_ref['key']}")
    return env


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels / matchExpressions with In, NotIn, Exists, DoesNotExist)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def ingress_allowed(
    policies: list[dict[str, Any]], target: Mapping[str, str], source: Mapping[str, str] | None, port: int
) -> bool:
    """Whether NetworkPolicies let `source` (pod labels in the same namespace; None = outside
    the namespace, e.g. the internet) reach `target` on `port`."""
    selecting = [
        p
        for p in policies
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"]) and matches(p["spec"]["podSelector"], target)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []) or []:
            ports = rule.get("ports")
            if ports and not any(p.get("port") in (port, None) for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                if "ipBlock" in peer:
                    if source is None:
                        return True
                    continue
                if source is None:
                    continue
                if "namespaceSelector" in peer:
                    continue  # another namespace (or all): not the same-namespace pod we test
                if matches(peer.get("podSelector", {}), source):
                    return True
    return False


def iter_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from iter_strings(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from iter_strings(value)
