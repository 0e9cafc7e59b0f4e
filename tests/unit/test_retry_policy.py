"""``RetryPolicy``: a pure function from the failed attempt to the delay before the next."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline import RetryPolicy


def test_delay_grows_by_backoff_from_the_initial_delay():
    policy = RetryPolicy(max_attempts=6, initial_delay=0.5, backoff=3.0, max_delay=1000)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 13.5, 40.5]


def test_delay_is_capped_by_max_delay():
    policy = RetryPolicy(max_attempts=50, initial_delay=1.0, backoff=2.0, max_delay=10.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 40)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_of_one_is_a_constant_delay():
    policy = RetryPolicy(max_attempts=4, initial_delay=0.2, backoff=1.0)
    assert {policy.delay(n) for n in range(1, 4)} == {0.2}


def test_zero_delay_is_allowed():
    assert RetryPolicy(initial_delay=0).delay(3) == 0


def test_should_retry_counts_the_first_attempt():
    policy = RetryPolicy(max_attempts=3)
    assert [policy.should_retry(n) for n in (1, 2, 3, 4)] == [True, True, False, False]
    assert not RetryPolicy(max_attempts=1).should_retry(1)


def test_defaults():
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_delay, policy.backoff, policy.max_delay) == (
        3,
        1.0,
        2.0,
        300.0,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"initial_delay": -0.1},
        {"max_delay": -1},
        {"backoff": 0.5},
    ],
)
def test_invalid_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_policy_is_frozen_and_hashable():
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 9  # type: ignore[misc]
    assert policy == RetryPolicy() and hash(policy) == hash(RetryPolicy())
