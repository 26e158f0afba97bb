# syntax=docker/dockerfile:1
# Image of the identity service of the Interloper control plane: sign-in, sessions, organisations, members, invitations.
# Build from the repository root:
#   docker build -f deploy/docker/identity.Dockerfile -t interloper/identity .
#   docker run interloper/identity      -> interloper-identity serve
#   docker run interloper/identity migrate -> interloper-identity migrate
# Subcommands: serve (HTTP + gRPC), migrate, session create --email E.
# Configuration: INTERLOPER_* environment variables (see .env.example).
# Only this service's dependencies are installed (uv sync --package icp-identity, from uv.lock); the
# runtime stage holds the virtual environment and nothing else (no sources, no uv, no compiler).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Every workspace member's pyproject.toml (uv resolves the workspace from them), then the
# third-party dependencies alone: this layer is rebuilt only when uv.lock changes.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/testing/pyproject.toml libs/testing/
COPY protos/python/pyproject.toml protos/python/
COPY gateway/pyproject.toml gateway/
COPY services/identity/pyproject.toml services/identity/
COPY services/pipelines/pyproject.toml services/pipelines/
COPY services/notifications/pyproject.toml services/notifications/
COPY services/agent/pyproject.toml services/agent/
COPY deploy/stack/pyproject.toml deploy/stack/
COPY clients/cli/pyproject.toml clients/cli/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package icp-identity
# The workspace packages this service needs, installed as wheels (not editable).
COPY libs/common/src libs/common/src
COPY protos/python/src protos/python/src
COPY services/identity/src services/identity/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package icp-identity

# -------------------------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="interloper-identity" \
      org.opencontainers.image.description="Interloper control plane: sign-in, sessions, organisations, members, invitations"
RUN groupadd --system --gid 10001 interloper \
    && useradd --system --uid 10001 --gid interloper --home-dir /var/lib/interloper --shell /usr/sbin/nologin interloper \
    && mkdir -p /var/lib/interloper \
    && chown interloper:interloper /var/lib/interloper
COPY --from=build /app/.venv /app/.venv
COPY deploy/docker/healthcheck.py /usr/local/bin/interloper-healthcheck
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INTERLOPER_DATA_DIR=/var/lib/interloper \
    INTERLOPER_HTTP_HOST=0.0.0.0 \
    INTERLOPER_HTTP_PORT=8101 \
    INTERLOPER_GRPC_PORT=9101
WORKDIR /var/lib/interloper
USER 10001:10001
EXPOSE 8101 9101
# /readyz: the process answers and its dependencies (PostgreSQL, NATS) are reachable.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/bin/interloper-healthcheck", "/readyz"]
ENTRYPOINT ["interloper-identity"]
CMD ["serve"]
