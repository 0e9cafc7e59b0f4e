"""The per-run hash chain of the audit log: pure functions, no I/O.

Each event's hash covers the previous event's hash and every field of the event, so editing,
inserting, deleting or reordering a row breaks the chain from that row on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from pipeline.jsonutil import canonical

GENESIS = ""


def _at_text(at: datetime) -> str:
    # Microsecond UTC text: PostgreSQL and SQLite both keep microseconds, so the text a
    # verifier rebuilds from the stored value is the text that was hashed.
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    prev_hash: str,
    run_id: str,
    idx: int,
    kind: str,
    actor: str,
    at: datetime,
    step: str | None,
    data: dict[str, Any],
) -> str:
    """The hash of one audit event chained to ``prev_hash``."""
    body = canonical([prev_hash, run_id, idx, kind, actor, _at_text(at), step, data])
    return hashlib.sha256(body.encode()).hexdigest()


class StoredEvent(Protocol):
    """The fields of a stored audit row that the chain covers."""

    # Read-only: stored rows and frozen records both satisfy it.
    @property
    def run_id(self) -> str: ...
    @property
    def idx(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def step(self) -> str | None: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def hash(self) -> str: ...


def find_break(events: Iterable[StoredEvent]) -> tuple[int | None, str | None, int]:
    """Walk a run's events oldest first; return (first bad idx, what is wrong, events seen)."""
    prev = GENESIS
    count = 0
    for expected_idx, ev in enumerate(events, start=1):
        count += 1
        if ev.idx != expected_idx:
            return ev.idx, f"event {expected_idx} is missing (found {ev.idx} in its place)", count
        again = event_hash(prev, ev.run_id, ev.idx, ev.kind, ev.actor, ev.at, ev.step, ev.data)
        if again != ev.hash:
            return (
                ev.idx,
                "its content does not match its hash (the row was edited, or the one before "
                "it was edited and re-hashed)",
                count,
            )
        prev = ev.hash
    return None, None, count
