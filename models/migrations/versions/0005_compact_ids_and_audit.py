"""native uuid ids and a leaner audit log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:00:00

What a parked run holds, made smaller (most of it was its audit events and the ids that
name it in every row and index entry):

- ``ravel_audit.prev_hash`` is dropped: it repeated the previous event's ``hash``, which the
  verifier now reads from that row (the hashed content is unchanged, so every chain written
  before still verifies).
- PostgreSQL only: run and wait ids (``ravel_runs.id`` and every column naming a run or a
  wait) become native ``uuid`` (16 bytes instead of 37), and the audit hashes
  (``ravel_audit.hash``, ``ravel_runs.audit_head``) their 32 bytes (``bytea``) instead of 64
  hex characters. SQLite keeps text. The foreign keys are dropped and recreated around the
  type change.
- The index of open waits' deadlines holds only waits that have one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: (table, column, referred table) of every foreign key naming a run or a wait
FOREIGN_KEYS = (
    ("ravel_steps", "run_id", "ravel_runs"),
    ("ravel_effects", "run_id", "ravel_runs"),
    ("ravel_messages", "run_id", "ravel_runs"),
    ("ravel_waits", "run_id", "ravel_runs"),
    ("ravel_inbound_events", "run_id", "ravel_runs"),
    ("ravel_audit", "run_id", "ravel_runs"),
    ("ravel_slack_messages", "run_id", "ravel_runs"),
    ("ravel_slack_messages", "wait_id", "ravel_waits"),
    ("ravel_approval_links", "run_id", "ravel_runs"),
    ("ravel_approval_links", "wait_id", "ravel_waits"),
)
#: every column holding a run's or a wait's id, by table
ID_COLUMNS = {
    "ravel_runs": ("id", "forked_from"),
    "ravel_waits": ("id", "run_id"),
    "ravel_steps": ("run_id",),
    "ravel_effects": ("run_id",),
    "ravel_messages": ("run_id",),
    "ravel_inbound_events": ("run_id", "wait_id"),
    "ravel_audit": ("run_id",),
    "ravel_slack_messages": ("wait_id", "run_id"),
    "ravel_approval_links": ("wait_id", "run_id"),
}
#: every column holding a SHA-256 digest of the audit chain, by table
DIGEST_COLUMNS = {"ravel_runs": ("audit_head",), "ravel_audit": ("hash",)}


def _fk_name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def _retype(to_ids: str, id_using: str, to_digest: str, digest_using: str) -> None:
    """Change every id and digest column's type (PostgreSQL), foreign keys set aside."""
    for table, column, referred in FOREIGN_KEYS:
        op.drop_constraint(_fk_name(table, column, referred), table, type_="foreignkey")
    for table in ID_COLUMNS.keys() | DIGEST_COLUMNS.keys():
        changes = [
            f"ALTER COLUMN {c} TYPE {to_ids} USING {id_using.format(c=c)}"
            for c in ID_COLUMNS.get(table, ())
        ] + [
            f"ALTER COLUMN {c} TYPE {to_digest} USING {digest_using.format(c=c)}"
            for c in DIGEST_COLUMNS.get(table, ())
        ]
        # One ALTER per table: the table is rewritten (and its indexes rebuilt) once.
        op.execute(f"ALTER TABLE {table} " + ", ".join(changes))
    for table, column, referred in FOREIGN_KEYS:
        op.create_foreign_key(
            _fk_name(table, column, referred),
            table,
            referred,
            [column],
            ["id"],
            ondelete="CASCADE",
        )


def _expiry_index(where: str) -> None:
    op.drop_index("ix_ravel_waits_open_expiry", table_name="ravel_waits")
    op.create_index(
        "ix_ravel_waits_open_expiry",
        "ravel_waits",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    with op.batch_alter_table("ravel_audit") as batch:
        batch.drop_column("prev_hash")
    _expiry_index("decided_at IS NULL AND expires_at IS NOT NULL")
    if op.get_bind().dialect.name == "postgresql":
        _retype("uuid", "{c}::uuid", "bytea", "decode({c}, 'hex')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _retype("varchar(36)", "{c}::text", "varchar(64)", "encode({c}, 'hex')")
    _expiry_index("decided_at IS NULL")
    with op.batch_alter_table("ravel_audit") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
    # Each event's prev_hash is the hash of the event before it (none before the first).
    op.execute(
        "UPDATE ravel_audit SET prev_hash = coalesce((SELECT p.hash FROM ravel_audit p "
        "WHERE p.run_id = ravel_audit.run_id AND p.idx = ravel_audit.idx - 1), '')"
    )
    with op.batch_alter_table("ravel_audit") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
