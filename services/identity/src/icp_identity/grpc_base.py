"""What every identity.v1 servicer method has at hand: the sessionmaker and the settings."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .settings import Settings


class ServicerBase:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        engine = sessions.kw["bind"]
        assert isinstance(engine, AsyncEngine)
        # Single-statement reads in autocommit mode: no BEGIN/COMMIT round trips (Authenticate
        # is on the path of every public request).
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
