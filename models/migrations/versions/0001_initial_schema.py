"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 14:14:18.566579
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "ravel_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workflow", sa.String(length=200), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("recorded_attempt", sa.Integer(), nullable=False),
        sa.Column("retry_base", sa.Integer(), nullable=False),
        sa.Column("fencing", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "input",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "wait_result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.Column("audit_head", sa.String(length=64), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'sleeping', 'waiting', 'succeeded', 'failed', "
            "'cancelled')",
            name=op.f("ck_ravel_runs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ravel_runs")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ravel_runs_idempotency_key")),
    )
    op.create_index("ix_ravel_runs_created_at", "ravel_runs", ["created_at"], unique=False)
    op.create_index(
        "ix_ravel_runs_lease_expiry",
        "ravel_runs",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )
    op.create_index(
        "ix_ravel_runs_pending_published",
        "ravel_runs",
        ["published_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_ravel_runs_status_workflow", "ravel_runs", ["status", "workflow"], unique=False
    )
    op.create_index(
        "ix_ravel_runs_wake_due",
        "ravel_runs",
        ["wake_at"],
        unique=False,
        postgresql_where=sa.text("status = 'sleeping'"),
        sqlite_where=sa.text("status = 'sleeping'"),
    )
    op.create_table(
        "ravel_workflows",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("start_step", sa.String(length=200), nullable=False),
        sa.Column(
            "steps",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ravel_workflows")),
    )
    op.create_table(
        "ravel_audit",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ravel_runs.id"],
            name=op.f("fk_ravel_audit_run_id_ravel_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "idx", name=op.f("pk_ravel_audit")),
    )
    op.create_table(
        "ravel_effects",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ravel_runs.id"],
            name=op.f("fk_ravel_effects_run_id_ravel_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", "name", name=op.f("pk_ravel_effects")),
    )
    op.create_table(
        "ravel_inbound_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wait_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ravel_runs.id"],
            name=op.f("fk_ravel_inbound_events_run_id_ravel_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ravel_inbound_events")),
    )
    op.create_index(
        "ix_ravel_inbound_events_run_name", "ravel_inbound_events", ["run_id", "name"], unique=False
    )
    op.create_table(
        "ravel_messages",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column(
            "message",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ravel_runs.id"],
            name=op.f("fk_ravel_messages_run_id_ravel_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "idx", name=op.f("pk_ravel_messages")),
    )
    op.create_table(
        "ravel_steps",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ravel_runs.id"],
            name=op.f("fk_ravel_steps_run_id_ravel_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ravel_steps")),
        sa.UniqueConstraint("run_id", "seq", "attempt", name="uq_ravel_steps_attempt"),
    )
    op.create_table(
        "ravel_waits",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column(
            "approvers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("then_step", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column(
            "decision_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ravel_runs.id"],
            name=op.f("fk_ravel_waits_run_id_ravel_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ravel_waits")),
    )
    op.create_index(
        "ix_ravel_waits_open_expiry",
        "ravel_waits",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("decided_at IS NULL"),
        sqlite_where=sa.text("decided_at IS NULL"),
    )
    op.create_index("ix_ravel_waits_run_id", "ravel_waits", ["run_id"], unique=False)
    op.create_index(
        "uq_ravel_waits_open_run",
        "ravel_waits",
        ["run_id"],
        unique=True,
        postgresql_where=sa.text("decided_at IS NULL"),
        sqlite_where=sa.text("decided_at IS NULL"),
    )


def downgrade() -> None:

    op.drop_index(
        "uq_ravel_waits_open_run",
        table_name="ravel_waits",
        postgresql_where=sa.text("decided_at IS NULL"),
        sqlite_where=sa.text("decided_at IS NULL"),
    )
    op.drop_index("ix_ravel_waits_run_id", table_name="ravel_waits")
    op.drop_index(
        "ix_ravel_waits_open_expiry",
        table_name="ravel_waits",
        postgresql_where=sa.text("decided_at IS NULL"),
        sqlite_where=sa.text("decided_at IS NULL"),
    )
    op.drop_table("ravel_waits")
    op.drop_table("ravel_steps")
    op.drop_table("ravel_messages")
    op.drop_index("ix_ravel_inbound_events_run_name", table_name="ravel_inbound_events")
    op.drop_table("ravel_inbound_events")
    op.drop_table("ravel_effects")
    op.drop_table("ravel_audit")
    op.drop_table("ravel_workflows")
    op.drop_index(
        "ix_ravel_runs_wake_due",
        table_name="ravel_runs",
        postgresql_where=sa.text("status = 'sleeping'"),
        sqlite_where=sa.text("status = 'sleeping'"),
    )
    op.drop_index("ix_ravel_runs_status_workflow", table_name="ravel_runs")
    op.drop_index(
        "ix_ravel_runs_pending_published",
        table_name="ravel_runs",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        "ix_ravel_runs_lease_expiry",
        table_name="ravel_runs",
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )
    op.drop_index("ix_ravel_runs_created_at", table_name="ravel_runs")
    op.drop_table("ravel_runs")
