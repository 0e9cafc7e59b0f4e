"""The per-run audit hash chain: ``event_hash`` and ``find_break`` (pure, no database)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.audit import GENESIS, event_hash, find_break

AT = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
RUN = "0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10"
BASE = (GENESIS, RUN, 1, "run.started", "api", AT, "start", {"workflow": "refund"})


@dataclasses.dataclass
class Row:
    run_id: str
    idx: int
    kind: str
    actor: str
    at: datetime
    step: str | None
    data: dict
    hash: str


def chain(n: int = 4) -> list[Row]:
    rows, prev = [], GENESIS
    for idx in range(1, n + 1):
        at = AT + timedelta(seconds=idx)
        data = {"n": idx, "nested": {"b": [1, 2], "a": None}}
        digest = event_hash(prev, RUN, idx, f"kind.{idx}", "worker", at, "step", data)
        rows.append(Row(RUN, idx, f"kind.{idx}", "worker", at, "step", data, digest))
        prev = digest
    return rows


def test_hash_is_deterministic_sha256_hex():
    digest = event_hash(*BASE)
    assert digest == event_hash(*BASE)
    assert len(digest) == 64 and int(digest, 16) >= 0


@pytest.mark.parametrize("field", range(8))
def test_every_field_is_covered(field):
    changed = list(BASE)
    changed[field] = {
        0: "f" * 64,
        1: "another-run",
        2: 2,
        3: "run.failed",
        4: "mallory",
        5: AT + timedelta(microseconds=1),
        6: None,
        7: {"workflow": "refunds"},
    }[field]
    assert event_hash(*changed) != event_hash(*BASE)


def test_data_key_order_does_not_matter():
    a = event_hash(GENESIS, RUN, 1, "k", "a", AT, None, {"x": 1, "y": {"p": 1, "q": 2}})
    b = event_hash(GENESIS, RUN, 1, "k", "a", AT, None, {"y": {"q": 2, "p": 1}, "x": 1})
    assert a == b


def test_the_same_instant_in_another_zone_hashes_the_same():
    shifted = AT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    changed = list(BASE)
    changed[5] = shifted
    assert event_hash(*changed) == event_hash(*BASE)


def test_an_intact_chain_verifies():
    rows = chain()
    assert find_break(rows) == (None, None, 4)
    assert find_break([]) == (None, None, 0)


def test_edited_content_is_found_at_its_row():
    rows = chain()
    rows[1].data = {"n": 99}
    bad, problem, _ = find_break(rows)
    assert bad == 2 and "edited" in problem


def test_edited_and_rehashed_row_breaks_the_next_link():
    rows = chain()
    r = rows[1]
    r.actor = "mallory"
    prev = rows[0].hash
    r.hash = event_hash(prev, r.run_id, r.idx, r.kind, r.actor, r.at, r.step, r.data)
    bad, problem, _ = find_break(rows)
    assert bad == 3 and "re-hashed" in problem


def test_a_missing_row_is_found():
    rows = chain()
    del rows[2]
    bad, problem, _ = find_break(rows)
    assert bad == 4 and "3 is missing" in problem


def test_reordered_rows_are_found():
    rows = chain()
    rows[1], rows[2] = rows[2], rows[1]
    bad, _, _ = find_break(rows)
    assert bad == 3


def test_a_chain_not_starting_at_genesis_is_found():
    rows = chain()[1:]
    for i, row in enumerate(rows, start=1):
        row.idx = i
    bad, _, _ = find_break(rows)
    assert bad == 1
