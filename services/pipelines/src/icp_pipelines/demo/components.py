# mypy: disable-error-code="misc,untyped-decorator"
"""The demo components (interloper-core; of the service only `tenant`, the organisation they run for)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar

import interloper as il
from interloper.partitioning import TimePartitionConfig
from pydantic import AfterValidator, Field

from ..tenant import current_org


def output_root(org_id: str) -> Path:
    """`<data dir>/demo-output/<org id>`: the only directory an organisation's demo CSVs go to."""
    return Path(os.environ.get("INTERLOPER_DATA_DIR", ".data")).resolve() / "demo-output" / str(uuid.UUID(org_id))


def _relative_path(value: str) -> str:
    """Refused at save time already: absolute paths, `..`, NUL (symlinks are checked on use)."""
    path = PurePosixPath(value)
    if "\x00" in value or path.is_absolute() or ".." in path.parts:
        raise ValueError("must be a relative path inside the organisation's demo output directory, without '..'")
    return value


class DemoConfig(il.Config):
    """Settings shared by the demo source's assets."""

    greeting: str = il.InputField(default="hello", description="Text written into every row")
    rows_per_day: int = Field(default=5, ge=1, le=1000, description="Rows generated per partition")


class DemoAdsConnection(il.Connection):
    """Credentials of the (imaginary) demo ads platform; sign in with OAuth or paste them."""

    oauth: ClassVar[il.OAuthConfig] = il.OAuthConfig(
        provider="google",
        auth_url="https://accounts.google.com/o/oauth2/v2/auth",
        scope="https://www.googleapis.com/auth/adwords",
        label="Google",
        icon="devicon:google",
    )

    client_id: str = il.InputField(description="OAuth client id")
    client_secret: str = il.SecretField(description="OAuth client secret")
    refresh_token: str = il.SecretField(description="OAuth refresh token")
    region: str = il.SelectField(
        default="eu",
        options=[{"label": "Europe", "value": "eu"}, {"label": "North America", "value": "na"}],
    )


class DemoCsvDestination(il.CSVDestination):
    """Writes CSV files under ``$INTERLOPER_DATA_DIR/demo-output/<org id>/<base_path>``: each
    organisation has its own directory, and a path leaving it (absolute, ``..``, a symlink) fails
    the asset instead of writing (or reading) anywhere else."""

    key: ClassVar[str] = "demo_csv_destination"
    name: ClassVar[str] = "Demo CSV"
    base_path: Annotated[str, AfterValidator(_relative_path)] = il.InputField(
        default="", description="Folder inside the organisation's demo output directory"
    )

    def _asset_path(self, context: Any) -> Path:
        org_id = current_org()
        if not org_id:
            raise RuntimeError("demo CSV destination: no organisation to write for")
        root = output_root(org_id)
        _relative_path(self.base_path)  # the stored config may predate the validator
        path: Path = (root / super()._asset_path(context)).resolve()  # <base_path>/<dataset>/<asset key>
        if not path.is_relative_to(root):
            raise ValueError(f"demo CSV destination: base_path {self.base_path!r} leaves the organisation's directory")
        return path


def _rows(day: dt.date, count: int, greeting: str) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        digest = hashlib.sha256(f"{day}:{i}".encode()).digest()
        rows.append({"date": day.isoformat(), "user_id": f"u{digest[0] % 10}", "value": digest[1], "note": greeting})
    return rows


_DAILY = TimePartitionConfig(column="date")


class DemoSource(il.Source):
    """Demo source: a few generated tables (partitioned and unpartitioned) with dependencies."""

    key: ClassVar[str] = "demo_source"
    name: ClassVar[str] = "Demo Source"
    icon: ClassVar[str] = "carbon:data-structured"
    tags: ClassVar[list[str]] = ["Demo"]
    resource_types: ClassVar[dict[str, type[il.Resource]]] = {"config": DemoConfig}
    destination_types: ClassVar[list[type[il.Destination]]] = [DemoCsvDestination]

    region: str = il.SelectField(
        default="eu",
        options=[{"label": "Europe", "value": "eu"}, {"label": "North America", "value": "na"}],
        description="Where the imaginary data comes from",
    )

    @il.asset(partitioning=_DAILY, tags=["Raw"], resources={"config": DemoConfig})
    def events(self, context: il.ExecutionContext, config: DemoConfig) -> list[dict[str, Any]]:
        """Generated events of one day."""
        day = context.partition_date
        return _rows(day, config.rows_per_day, config.greeting)

    @il.asset(partitioning=_DAILY, tags=["Report"])
    def daily_summary(self, context: il.ExecutionContext, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Events of one day aggregated per user."""
        totals: dict[str, int] = {}
        for row in events:
            totals[str(row["user_id"])] = totals.get(str(row["user_id"]), 0) + int(row["value"])
        day = context.partition_date.isoformat()
        return [{"date": day, "user_id": user, "total": total} for user, total in sorted(totals.items())]

    @il.asset(tags=["Raw"])
    def users(self) -> list[dict[str, Any]]:
        """The (static) user table."""
        return [{"user_id": f"u{i}", "name": f"User {i}"} for i in range(10)]

    @il.asset(tags=["Report"])
    def user_report(self, users: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One row per user with a display label."""
        return [{"user_id": u["user_id"], "label": f"{u['name']} ({u['user_id']})"} for u in users]


class DemoAdsSource(il.Source):
    """Demo ads source: needs a connection (OAuth-capable) to run."""

    key: ClassVar[str] = "demo_ads"
    name: ClassVar[str] = "Demo Ads"
    icon: ClassVar[str] = "carbon:analytics"
    tags: ClassVar[list[str]] = ["Demo", "Advertising"]
    resource_types: ClassVar[dict[str, type[il.Resource]]] = {"connection": DemoAdsConnection}
    destination_types: ClassVar[list[type[il.Destination]]] = [DemoCsvDestination]

    account_id: str = il.InputField(default="", description="Account to read")

    @il.asset(partitioning=_DAILY, tags=["Advertising"], resources={"connection": DemoAdsConnection})
    def campaigns(self, context: il.ExecutionContext, connection: DemoAdsConnection) -> list[dict[str, Any]]:
        """Campaign statistics of one day."""
        day = context.partition_date.isoformat()
        return [{"date": day, "campaign": f"c{i}", "region": connection.region, "clicks": i * 7} for i in range(3)]


@il.asset(tags=["Demo"], destinations=[DemoCsvDestination])
def demo_ping() -> list[dict[str, Any]]:
    """A standalone asset: one row with the current time."""
    return [{"pinged_at": dt.datetime.now(dt.UTC).isoformat()}]


DemoPing = demo_ping


class DemoLiveSource(il.Source):
    """Demo live source: one asset that works for a few seconds and reports each step, so a run
    can be watched live (runs list, run page's events). Its own source, so that the jobs of
    ``demo_source`` stay fast."""

    key: ClassVar[str] = "demo_live"
    name: ClassVar[str] = "Demo Live"
    icon: ClassVar[str] = "carbon:time"
    tags: ClassVar[list[str]] = ["Demo"]
    destination_types: ClassVar[list[type[il.Destination]]] = [DemoCsvDestination]

    seconds: float = Field(default=5.0, ge=0, le=300, description="How long the progress asset works")
    steps: int = Field(default=5, ge=1, le=100, description="Progress events reported on the way")
    fail_after: int = Field(default=0, ge=0, le=100, description="Fail after this step (0: never), to see a failed run")

    @il.asset(tags=["Demo"])
    def progress(self, context: il.ExecutionContext) -> list[dict[str, Any]]:
        """Works for `seconds`, with a progress event (a run event of type `log`) per step, and a
        line on stdout (the run's logs) per step; fails after step `fail_after` if set."""
        rows = []
        for step in range(1, self.steps + 1):
            time.sleep(self.seconds / self.steps)
            print(f"working: step {step}/{self.steps}")
            context.logger.info(f"Progress: step {step}/{self.steps} done")
            rows.append({"step": step, "done_at": dt.datetime.now(dt.UTC).isoformat()})
            if step == self.fail_after:
                raise RuntimeError(f"Demo failure after step {step}")
        return rows
