"""workflow versions side by side, worker and reaper heartbeats, due re-publish, tracebacks

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 03:40:00

- ``ravel_workflows`` is keyed by (name, version) and remembers when each was last seen, so a
  rolling deploy keeps the old version on record while its runs drain.
- ``ravel_workers`` and ``ravel_reapers`` are heartbeats: ``ravel doctor`` and the workers
  themselves see when no reaper has run.
- ``ravel_runs.redispatch_at`` holds the reaper's next re-publish time in an indexed column,
  so its query returns only what is due (the backoff used to be applied after the LIMIT).
- ``ravel_steps.traceback`` keeps where a failed attempt raised.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # The registry is a cache of what workers serve (they re-register at start and with
    # every heartbeat): rebuilt with its new key rather than altered in place.
    op.drop_table("ravel_workflows")
    op.create_table(
        "ravel_workflows",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("start_step", sa.String(length=200), nullable=False),
        sa.Column("steps", JSON, nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_ravel_workflows")),
    )
    op.create_table(
        "ravel_workers",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("workflows", JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ravel_workers")),
    )
    op.create_table(
        "ravel_reapers",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("last_pass_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("passes", sa.BigInteger(), nullable=False),
        sa.Column("last_report", JSON, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ravel_reapers")),
    )
    with op.batch_alter_table("ravel_runs") as batch:
        batch.add_column(sa.Column("redispatch_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_index("ix_ravel_runs_pending_published")
    op.create_index(
        "ix_ravel_runs_pending_redispatch",
        "ravel_runs",
        ["redispatch_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    # Runs pending at upgrade time are due for a re-publish check at once.
    op.execute("UPDATE ravel_runs SET redispatch_at = published_at WHERE status = 'pending'")
    with op.batch_alter_table("ravel_steps") as batch:
        batch.add_column(sa.Column("traceback", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ravel_steps") as batch:
        batch.drop_column("traceback")
    op.drop_index("ix_ravel_runs_pending_redispatch", table_name="ravel_runs")
    with op.batch_alter_table("ravel_runs") as batch:
        batch.drop_column("redispatch_at")
    op.create_index(
        "ix_ravel_runs_pending_published",
        "ravel_runs",
        ["published_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_table("ravel_reapers")
    op.drop_table("ravel_workers")
    op.drop_table("ravel_workflows")
    op.create_table(
        "ravel_workflows",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("start_step", sa.String(length=200), nullable=False),
        sa.Column("steps", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ravel_workflows")),
    )
