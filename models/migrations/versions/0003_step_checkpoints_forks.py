"""step checkpoints and forks

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 10:00:00

- ``ravel_steps.state_before``, ``wait_result`` and ``message_count``: the checkpoint each
  committed attempt started from, so a run can be forked from the checkpoint before any of
  its steps (and a step's state shown before and after). Rows written before this revision
  have none: a fork from those steps is refused with a clear error.
- ``ravel_runs.forked_from`` and ``forked_from_seq``: where a fork came from.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("ravel_steps") as batch:
        batch.add_column(sa.Column("state_before", JSON, nullable=True))
        batch.add_column(sa.Column("wait_result", JSON, nullable=True))
        batch.add_column(sa.Column("message_count", sa.Integer(), nullable=True))
    with op.batch_alter_table("ravel_runs") as batch:
        batch.add_column(sa.Column("forked_from", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("forked_from_seq", sa.Integer(), nullable=True))
    op.create_index(
        "ix_ravel_runs_forked_from",
        "ravel_runs",
        ["forked_from"],
        unique=False,
        postgresql_where=sa.text("forked_from IS NOT NULL"),
        sqlite_where=sa.text("forked_from IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_ravel_runs_forked_from", table_name="ravel_runs")
    with op.batch_alter_table("ravel_runs") as batch:
        batch.drop_column("forked_from_seq")
        batch.drop_column("forked_from")
    with op.batch_alter_table("ravel_steps") as batch:
        batch.drop_column("message_count")
        batch.drop_column("wait_result")
        batch.drop_column("state_before")
