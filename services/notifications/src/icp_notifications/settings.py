"""Settings of the notifications service."""

from __future__ import annotations

from icp_common.settings import ServiceSettings


class Settings(ServiceSettings):
    http_port: int = 8103
