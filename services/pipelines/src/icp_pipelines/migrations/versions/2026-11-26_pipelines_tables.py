# ruff: noqa: E501
"""pipelines tables: resources, destinations, sources, assets (+ bindings, dependencies), jobs,
backfills, runs, events, and the asset_executions view

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = [
    """CREATE TABLE destinations (
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    org_id UUID NOT NULL,
    key VARCHAR NOT NULL,
    name VARCHAR,
    config JSONB,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_destinations PRIMARY KEY (id)
)""",
    """CREATE INDEX ix_destinations_org_id ON destinations (org_id)""",
    """CREATE TABLE jobs (
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    org_id UUID NOT NULL,
    name VARCHAR NOT NULL,
    cron VARCHAR NOT NULL,
    tags VARCHAR[] DEFAULT '{}' NOT NULL,
    enabled BOOLEAN NOT NULL,
    partitioned BOOLEAN NOT NULL,
    backfill_days INTEGER,
    last_run_at TIMESTAMP WITH TIME ZONE,
    next_run_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_jobs PRIMARY KEY (id)
)""",
    """CREATE INDEX ix_jobs_due ON jobs (next_run_at) WHERE enabled""",
    """CREATE INDEX ix_jobs_org_id ON jobs (org_id)""",
    """CREATE TABLE resources (
    id UUID NOT NULL,
    org_id UUID NOT NULL,
    kind VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    data BYTEA NOT NULL,
    wrapped_key BYTEA NOT NULL,
    key_id VARCHAR NOT NULL,
    encrypted BOOLEAN NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_resources PRIMARY KEY (id)
)""",
    """CREATE INDEX ix_resources_org_id_kind ON resources (org_id, kind)""",
    """CREATE TABLE sources (
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    org_id UUID NOT NULL,
    key VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    config JSONB,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_sources PRIMARY KEY (id)
)""",
    """CREATE INDEX ix_sources_org_id ON sources (org_id)""",
    """CREATE TABLE assets (
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    source_id UUID,
    org_id UUID NOT NULL,
    key VARCHAR NOT NULL,
    materializable BOOLEAN NOT NULL,
    config JSONB,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT clock_timestamp() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_assets PRIMARY KEY (id),
    CONSTRAINT fk_assets_source_id_sources FOREIGN KEY(source_id) REFERENCES sources (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_assets_org_id ON assets (org_id)""",
    """CREATE UNIQUE INDEX uq_assets_source_id_key ON assets (source_id, key)""",
    """CREATE TABLE backfills (
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    job_id UUID,
    org_id UUID NOT NULL,
    status VARCHAR NOT NULL,
    start_date DATE NOT NULL,
    end_date DATE NOT NULL,
    concurrency INTEGER NOT NULL,
    fail_fast BOOLEAN NOT NULL,
    partitions INTEGER NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT clock_timestamp() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_backfills PRIMARY KEY (id),
    CONSTRAINT ck_backfills_status CHECK (status IN ('queued', 'running', 'success', 'failed', 'canceled')),
    CONSTRAINT ck_backfills_concurrency CHECK (concurrency >= 1),
    CONSTRAINT ck_backfills_date_range CHECK (end_date >= start_date),
    CONSTRAINT fk_backfills_job_id_jobs FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE SET NULL
)""",
    """CREATE INDEX ix_backfills_job_id ON backfills (job_id)""",
    """CREATE INDEX ix_backfills_org_id_created_at ON backfills (org_id, created_at)""",
    """CREATE TABLE destination_resources (
    destination_id UUID NOT NULL,
    slot VARCHAR NOT NULL,
    resource_id UUID NOT NULL,
    CONSTRAINT pk_destination_resources PRIMARY KEY (destination_id, slot),
    CONSTRAINT fk_destination_resources_destination_id_destinations FOREIGN KEY(destination_id) REFERENCES destinations (id) ON DELETE CASCADE,
    CONSTRAINT fk_destination_resources_resource_id_resources FOREIGN KEY(resource_id) REFERENCES resources (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_destination_resources_resource_id ON destination_resources (resource_id)""",
    """CREATE TABLE job_sources (
    job_id UUID NOT NULL,
    source_id UUID NOT NULL,
    position INTEGER NOT NULL,
    CONSTRAINT pk_job_sources PRIMARY KEY (job_id, source_id),
    CONSTRAINT fk_job_sources_job_id_jobs FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE,
    CONSTRAINT fk_job_sources_source_id_sources FOREIGN KEY(source_id) REFERENCES sources (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_job_sources_source_id ON job_sources (source_id)""",
    """CREATE TABLE source_destinations (
    source_id UUID NOT NULL,
    destination_id UUID NOT NULL,
    position INTEGER NOT NULL,
    CONSTRAINT pk_source_destinations PRIMARY KEY (source_id, destination_id),
    CONSTRAINT fk_source_destinations_source_id_sources FOREIGN KEY(source_id) REFERENCES sources (id) ON DELETE CASCADE,
    CONSTRAINT fk_source_destinations_destination_id_destinations FOREIGN KEY(destination_id) REFERENCES destinations (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_source_destinations_destination_id ON source_destinations (destination_id)""",
    """CREATE TABLE source_resources (
    source_id UUID NOT NULL,
    slot VARCHAR NOT NULL,
    resource_id UUID NOT NULL,
    CONSTRAINT pk_source_resources PRIMARY KEY (source_id, slot),
    CONSTRAINT fk_source_resources_source_id_sources FOREIGN KEY(source_id) REFERENCES sources (id) ON DELETE CASCADE,
    CONSTRAINT fk_source_resources_resource_id_resources FOREIGN KEY(resource_id) REFERENCES resources (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_source_resources_resource_id ON source_resources (resource_id)""",
    """CREATE TABLE asset_dependencies (
    asset_id UUID NOT NULL,
    upstream_asset_id UUID NOT NULL,
    param_name VARCHAR NOT NULL,
    CONSTRAINT pk_asset_dependencies PRIMARY KEY (asset_id, upstream_asset_id, param_name),
    CONSTRAINT fk_asset_dependencies_asset_id_assets FOREIGN KEY(asset_id) REFERENCES assets (id) ON DELETE CASCADE,
    CONSTRAINT fk_asset_dependencies_upstream_asset_id_assets FOREIGN KEY(upstream_asset_id) REFERENCES assets (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_asset_dependencies_upstream_asset_id ON asset_dependencies (upstream_asset_id)""",
    """CREATE TABLE asset_destinations (
    asset_id UUID NOT NULL,
    destination_id UUID NOT NULL,
    position INTEGER NOT NULL,
    CONSTRAINT pk_asset_destinations PRIMARY KEY (asset_id, destination_id),
    CONSTRAINT fk_asset_destinations_asset_id_assets FOREIGN KEY(asset_id) REFERENCES assets (id) ON DELETE CASCADE,
    CONSTRAINT fk_asset_destinations_destination_id_destinations FOREIGN KEY(destination_id) REFERENCES destinations (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_asset_destinations_destination_id ON asset_destinations (destination_id)""",
    """CREATE TABLE asset_resources (
    asset_id UUID NOT NULL,
    slot VARCHAR NOT NULL,
    resource_id UUID NOT NULL,
    CONSTRAINT pk_asset_resources PRIMARY KEY (asset_id, slot),
    CONSTRAINT fk_asset_resources_asset_id_assets FOREIGN KEY(asset_id) REFERENCES assets (id) ON DELETE CASCADE,
    CONSTRAINT fk_asset_resources_resource_id_resources FOREIGN KEY(resource_id) REFERENCES resources (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_asset_resources_resource_id ON asset_resources (resource_id)""",
    """CREATE TABLE job_assets (
    job_id UUID NOT NULL,
    asset_id UUID NOT NULL,
    position INTEGER NOT NULL,
    CONSTRAINT pk_job_assets PRIMARY KEY (job_id, asset_id),
    CONSTRAINT fk_job_assets_job_id_jobs FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE,
    CONSTRAINT fk_job_assets_asset_id_assets FOREIGN KEY(asset_id) REFERENCES assets (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_job_assets_asset_id ON job_assets (asset_id)""",
    """CREATE TABLE runs (
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    job_id UUID,
    org_id UUID NOT NULL,
    backfill_id UUID,
    partition_date DATE,
    status VARCHAR NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT clock_timestamp() NOT NULL,
    dispatched_at TIMESTAMP WITH TIME ZONE,
    heartbeat_at TIMESTAMP WITH TIME ZONE,
    worker_id VARCHAR,
    attempts INTEGER DEFAULT '0' NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_runs PRIMARY KEY (id),
    CONSTRAINT ck_runs_status CHECK (status IN ('queued', 'pending', 'dispatched', 'running', 'success', 'failed', 'canceled')),
    CONSTRAINT fk_runs_job_id_jobs FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE SET NULL,
    CONSTRAINT fk_runs_backfill_id_backfills FOREIGN KEY(backfill_id) REFERENCES backfills (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_runs_backfill_id_status ON runs (backfill_id, status)""",
    """CREATE INDEX ix_runs_inflight ON runs (heartbeat_at) WHERE status IN ('dispatched', 'running')""",
    """CREATE INDEX ix_runs_job_id ON runs (job_id)""",
    """CREATE INDEX ix_runs_org_id_created_at ON runs (org_id, created_at)""",
    """CREATE INDEX ix_runs_queued ON runs (created_at) WHERE status = 'queued'""",
    """CREATE TABLE events (
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    org_id UUID NOT NULL,
    run_id UUID,
    backfill_id UUID,
    event_type VARCHAR NOT NULL,
    asset_id UUID,
    asset_key VARCHAR,
    partition_or_window VARCHAR,
    error TEXT,
    traceback TEXT,
    message TEXT,
    level VARCHAR,
    timestamp TIMESTAMP WITH TIME ZONE DEFAULT clock_timestamp() NOT NULL,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT pk_events PRIMARY KEY (id),
    CONSTRAINT fk_events_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE,
    CONSTRAINT fk_events_backfill_id_backfills FOREIGN KEY(backfill_id) REFERENCES backfills (id) ON DELETE CASCADE
)""",
    """CREATE INDEX ix_events_asset_lookup ON events (run_id, asset_key, event_type, timestamp)""",
    """CREATE INDEX ix_events_org_id ON events (org_id)""",
    """CREATE INDEX ix_events_run_id_timestamp ON events (run_id, timestamp, seq)""",
    """CREATE VIEW asset_executions AS
SELECT DISTINCT ON (e.run_id, e.asset_id)
    e.run_id,
    e.org_id,
    e.asset_id,
    e.asset_key,
    CASE e.event_type
        WHEN 'asset_failed' THEN 'failed'
        WHEN 'asset_canceled' THEN 'canceled'
        WHEN 'asset_completed' THEN 'success'
        WHEN 'asset_started' THEN 'running'
        WHEN 'asset_skipped' THEN 'skipped'
        WHEN 'asset_queued' THEN 'queued'
    END AS status,
    (SELECT min(s.timestamp) FROM events s
      WHERE s.run_id = e.run_id AND s.asset_id = e.asset_id AND s.event_type = 'asset_started') AS started_at,
    (SELECT max(c.timestamp) FROM events c
      WHERE c.run_id = e.run_id AND c.asset_id = e.asset_id
        AND c.event_type IN ('asset_completed', 'asset_failed', 'asset_canceled')) AS completed_at,
    (SELECT min(q.timestamp) FROM events q
      WHERE q.run_id = e.run_id AND q.asset_id = e.asset_id AND q.event_type = 'asset_queued') AS created_at
FROM events e
WHERE e.asset_id IS NOT NULL
ORDER BY e.run_id, e.asset_id,
    CASE e.event_type
        WHEN 'asset_failed' THEN 1
        WHEN 'asset_canceled' THEN 2
        WHEN 'asset_completed' THEN 3
        WHEN 'asset_started' THEN 4
        WHEN 'asset_skipped' THEN 5
        WHEN 'asset_queued' THEN 6
    END NULLS LAST,
    e.timestamp DESC, e.seq DESC""",
]

TABLES = [
    "events",
    "runs",
    "backfills",
    "job_assets",
    "job_sources",
    "jobs",
    "asset_dependencies",
    "asset_destinations",
    "asset_resources",
    "assets",
    "source_destinations",
    "source_resources",
    "sources",
    "destination_resources",
    "destinations",
    "resources",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS asset_executions")
    for table in TABLES:
        op.drop_table(table)
