"""The assistant of one agent process: ADK's database session service (in the agent's own
database), the pipelines.v1 client, and — when a model is configured — the ADK runner.

google-adk is imported here, in start(), not when the package is imported: the CLI's migrate
and the tests that do not chat stay light."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from icp_common.identity import IdentitySigner

from ..settings import Settings
from .pipelines import PipelinesClient

if TYPE_CHECKING:
    from google.adk.runners import Runner
    from google.adk.sessions import DatabaseSessionService

log = logging.getLogger(__name__)

APP_NAME = "interloper_agent"


class Assistant:
    def __init__(self, settings: Settings, engine: AsyncEngine, secret: bytes, signer: IdentitySigner) -> None:
        self.settings = settings
        self.engine = engine
        self._secret = secret
        self._signer = signer
        self.model_problem: str | None = settings.model_problem()
        self._sessions: DatabaseSessionService | None = None
        self._runner: Runner | None = None
        self._pipelines: PipelinesClient | None = None

    @property
    def sessions(self) -> DatabaseSessionService:
        if self._sessions is None:
            raise RuntimeError("the assistant is not started")
        return self._sessions

    @property
    def runner(self) -> Runner | None:
        """The ADK runner; None when no model is configured (chat answers 503)."""
        return self._runner

    @property
    def pipelines(self) -> PipelinesClient:
        if self._pipelines is None:
            raise RuntimeError("the assistant is not started")
        return self._pipelines

    async def start(self) -> None:
        from google.adk.runners import Runner
        from google.adk.sessions import DatabaseSessionService

        from .agents import build_root_agent
        from .models import model_factory

        # The tables exist (migration 0002); this only checks them and reads ADK's schema version.
        self._sessions = DatabaseSessionService(db_engine=self.engine)
        await self._sessions.prepare_tables()
        self._pipelines = PipelinesClient(
            self.settings.addresses.pipelines_grpc_target,
            self._secret,
            self._signer,
            timeout=self.settings.agent.grpc_timeout_seconds,
        )
        if self.model_problem is not None:
            log.warning("assistant chat disabled: %s (sessions still work)", self.model_problem)
            return
        root = build_root_agent(model_factory(self.settings), self._pipelines)
        self._runner = Runner(app_name=APP_NAME, agent=root, session_service=self._sessions)
        log.info("assistant ready: model %s, pipelines at %s", self.settings.agent.model, self._pipelines.target)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.close()
        if self._pipelines is not None:
            await self._pipelines.close()
