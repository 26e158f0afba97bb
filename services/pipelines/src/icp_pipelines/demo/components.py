# mypy: disable-error-code="misc,untyped-decorator"
"""The demo components (pure interloper-core; no dependency on the service)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any, ClassVar

import interloper as il
from interloper.partitioning import TimePartitionConfig
from pydantic import Field


def _default_output_dir() -> str:
    return str(Path(os.environ.get("INTERLOPER_DATA_DIR", ".data")) / "demo-output")


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
    """Writes CSV files under the data directory (``$INTERLOPER_DATA_DIR/demo-output``)."""

    key: ClassVar[str] = "demo_csv_destination"
    name: ClassVar[str] = "Demo CSV"
    base_path: str = il.InputField(default_factory=_default_output_dir, description="Output directory")


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
