"""Settings of the pipelines service (API, scheduler and worker processes)."""

from __future__ import annotations

from pydantic import Field

from icp_common.settings import ServiceSettings


class Settings(ServiceSettings):
    http_port: int = 8102
    grpc_port: int = 9102
    catalog: list[str] = Field(default_factory=list, description="Dotted import paths of catalog components")
