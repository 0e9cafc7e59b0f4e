"""The run status enum, the DB CHECK values and the transition table agree."""

from __future__ import annotations

import pytest

from models.base import RunStatusValues
from models.tables import _STATUS_CHECK
from pipeline.status import (
    FINAL_STATUSES,
    LIVE_STATUSES,
    TRANSITIONS,
    RunStatus,
    can_transition,
    sources,
)


def test_db_check_values_equal_the_enum():
    assert list(RunStatusValues) == [s.value for s in RunStatus]
    for status in RunStatus:
        assert f"'{status.value}'" in _STATUS_CHECK


def test_status_is_a_str_enum():
    assert RunStatus.SUCCEEDED == "succeeded"
    assert RunStatus("waiting") is RunStatus.WAITING
    with pytest.raises(ValueError):
        RunStatus("done")


def test_every_status_is_live_or_final():
    assert set(RunStatus) == LIVE_STATUSES | FINAL_STATUSES
    assert not LIVE_STATUSES & FINAL_STATUSES
    assert all(s.is_final != s.is_live for s in RunStatus)


def test_the_table_names_every_target():
    assert set(TRANSITIONS) == set(RunStatus)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("pending", "running"),
        ("running", "pending"),
        ("running", "running"),  # a claim of an expired lease
        ("running", "sleeping"),
        ("running", "waiting"),
        ("running", "succeeded"),
        ("running", "failed"),
        ("sleeping", "pending"),
        ("waiting", "pending"),
        ("failed", "pending"),  # an operator's retry
        ("pending", "cancelled"),
        ("running", "cancelled"),
        ("sleeping", "cancelled"),
        ("waiting", "cancelled"),
    ],
)
def test_allowed_transitions(current, target):
    assert can_transition(RunStatus(current), RunStatus(target))
    assert current in sources(RunStatus(target))


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("succeeded", "pending"),
        ("succeeded", "cancelled"),
        ("failed", "cancelled"),
        ("failed", "running"),
        ("cancelled", "pending"),
        ("cancelled", "running"),
        ("waiting", "running"),  # a parked run is only woken by a decision
        ("sleeping", "running"),
        ("pending", "succeeded"),  # only a running step finishes a run
        ("waiting", "succeeded"),
    ],
)
def test_refused_transitions(current, target):
    assert not can_transition(RunStatus(current), RunStatus(target))
    assert current not in sources(RunStatus(target))


def test_nothing_leaves_succeeded_or_cancelled():
    for target, allowed in TRANSITIONS.items():
        assert RunStatus.SUCCEEDED not in allowed, target
        assert RunStatus.CANCELLED not in allowed, target
    # ...and a failed run only goes back to pending (retry_run).
    assert [t for t, allowed in TRANSITIONS.items() if RunStatus.FAILED in allowed] == [
        RunStatus.PENDING
    ]


def test_sources_are_sorted_values_for_sql():
    for target in RunStatus:
        values = sources(target)
        assert list(values) == sorted(values)
        assert all(isinstance(v, str) and v in RunStatusValues for v in values)
