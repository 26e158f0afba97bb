"""Every table of the pipelines service, so that `db.metadata` knows them all (the app, Alembic,
tests). Apart from `db`, which every domain's models import."""

from __future__ import annotations

from .assets import models as _assets  # noqa: F401
from .backfills import models as _backfills  # noqa: F401
from .db import metadata
from .destinations import models as _destinations  # noqa: F401
from .jobs import models as _jobs  # noqa: F401
from .resources import models as _resources  # noqa: F401
from .runs import models as _runs  # noqa: F401
from .sources import models as _sources  # noqa: F401

__all__ = ["load_models", "metadata"]


def load_models() -> None:
    """Importing this module loaded every table; entry points call this to say why they import it."""
