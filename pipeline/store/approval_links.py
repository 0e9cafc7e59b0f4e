"""Approval links: single-use tokens bound to one wait and one principal, stored hashed.

Only the SHA-256 of a token is stored. A link is used up by one compare-and-set UPDATE
(unused and unexpired, by the database clock), so two clicks on one link cannot both decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from models import ApprovalLink, table_of
from pipeline.store._db import Database, db_now

links_t = table_of(ApprovalLink)


@dataclass(frozen=True)
class LinkRecord:
    """A stored link, with the database clock's ``now`` at the time it was read."""

    wait_id: str
    run_id: str
    principal: str
    groups: list[str]
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    decision: str | None
    now: datetime

    @property
    def expired(self) -> bool:
        """Whether the link's time ran out (by the database clock)."""
        return self.expires_at <= self.now


def add(
    db: Database,
    token_sha256: str,
    wait_id: str,
    run_id: str,
    principal: str,
    groups: list[str],
    created_by: str,
    expires_at: datetime,
) -> None:
    """Store a new link."""
    with db.begin() as conn:
        conn.execute(
            links_t.insert().values(
                token_sha256=token_sha256,
                wait_id=wait_id,
                run_id=run_id,
                principal=principal,
                groups=groups,
                created_by=created_by,
                created_at=db_now(),
                expires_at=expires_at,
            )
        )


def find(db: Database, token_sha256: str) -> LinkRecord | None:
    """The link with this token hash, or None."""
    with db.engine.connect() as conn:
        row = conn.execute(
            select(links_t, db_now().label("now")).where(links_t.c.token_sha256 == token_sha256)
        ).first()
    if row is None:
        return None
    return LinkRecord(
        row.wait_id,
        row.run_id,
        row.principal,
        list(row.groups or []),
        row.created_by,
        row.created_at,
        row.expires_at,
        row.used_at,
        row.decision,
        row.now,
    )


def use(db: Database, token_sha256: str, decision: str) -> bool:
    """Use the link up for ``decision``; False if it was used already or has expired."""
    with db.begin() as conn:
        return (
            conn.execute(
                update(links_t)
                .where(
                    links_t.c.token_sha256 == token_sha256,
                    links_t.c.used_at.is_(None),
                    links_t.c.expires_at > db_now(),
                )
                .values(used_at=db_now(), decision=decision)
            ).rowcount
            == 1
        )


def give_back(db: Database, token_sha256: str) -> None:
    """Make a used link usable again (its decision could not be stored: the database was
    unreachable), so the person can try again."""
    with db.begin() as conn:
        conn.execute(
            update(links_t)
            .where(links_t.c.token_sha256 == token_sha256)
            .values(used_at=None, decision=None)
        )


__all__ = ["LinkRecord", "add", "find", "give_back", "use"]
