"""Slack approval messages and single-use approval links

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10 09:00:00

- ``ravel_slack_messages``: the outbox of Slack approval messages, one row per wait (its
  primary key), so a wait is never posted twice; ``next_attempt_at`` is both the retry time
  and the end of a poster's claim.
- ``ravel_approval_links``: approval links bound to one wait and one principal, keyed by the
  SHA-256 of their token (the token is never stored), single use (``used_at``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ravel_slack_messages",
        sa.Column("wait_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(length=200), nullable=True),
        sa.Column("ts", sa.String(length=64), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("sent_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ravel_runs.id"],
            ondelete="CASCADE",
            name=op.f("fk_ravel_slack_messages_run_id_ravel_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["wait_id"],
            ["ravel_waits.id"],
            ondelete="CASCADE",
            name=op.f("fk_ravel_slack_messages_wait_id_ravel_waits"),
        ),
        sa.PrimaryKeyConstraint("wait_id", name=op.f("pk_ravel_slack_messages")),
    )
    op.create_index(
        "ix_ravel_slack_messages_due",
        "ravel_slack_messages",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "ravel_approval_links",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("wait_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=False),
        sa.Column("groups", JSON, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("used_at", TIME, nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ravel_runs.id"],
            ondelete="CASCADE",
            name=op.f("fk_ravel_approval_links_run_id_ravel_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["wait_id"],
            ["ravel_waits.id"],
            ondelete="CASCADE",
            name=op.f("fk_ravel_approval_links_wait_id_ravel_waits"),
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_ravel_approval_links")),
    )
    op.create_index(
        "ix_ravel_approval_links_wait_id", "ravel_approval_links", ["wait_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_ravel_approval_links_wait_id", table_name="ravel_approval_links")
    op.drop_table("ravel_approval_links")
    op.drop_index("ix_ravel_slack_messages_due", table_name="ravel_slack_messages")
    op.drop_table("ravel_slack_messages")
