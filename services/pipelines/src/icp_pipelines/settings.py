"""Settings of the pipelines service (API, scheduler and worker processes)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from icp_common.settings import ServiceSettings

from .execution.settings import CronSettings, ReaperSettings, RunnerSettings, SchedulerSettings, WorkerSettings
from .oauth.settings import OAuthSettings


class Settings(ServiceSettings):
    http_port: int = 8102
    grpc_port: int = 9102
    catalog: list[str] = Field(
        default_factory=list,
        description="Dotted import paths of catalog components (JSON list), imported once at start-up",
    )
    encryption_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Key-encryption keys for resource data: JSON {key_id: base64 of 32 bytes}",
    )
    encryption_active_key: str = Field(
        "", description="Id (in INTERLOPER_ENCRYPTION_KEYS) of the key new resource data is encrypted with"
    )
    secrets_encryption_key: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("SECRETS_ENCRYPTION_KEY", "INTERLOPER_SECRETS_ENCRYPTION_KEY"),
        description="The reference's single key variable; used when INTERLOPER_ENCRYPTION_KEYS is empty",
    )
    oauth: OAuthSettings = Field(
        default_factory=OAuthSettings, description="Ad-platform OAuth apps and upstream URLs (INTERLOPER_OAUTH_*)"
    )
    # Run execution (issue 5): the worker and scheduler processes.
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    cron: CronSettings = Field(default_factory=CronSettings)
    reaper: ReaperSettings = Field(default_factory=ReaperSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
