"""What a fork's state patch may change (pipeline.patch): values, not their JSON types."""

from __future__ import annotations

import pytest

from pipeline.agent.conversation import STATE_KEY
from pipeline.errors import InvalidInput
from pipeline.patch import RESERVED_KEYS, apply

STATE = {"vendor": {"name": "acme", "tier": 1, "tags": ["a"]}, "limit": 5, "note": None, "ok": True}


def test_values_change_new_keys_and_nulls_are_accepted() -> None:
    new, keys = apply(
        STATE,
        {
            "vendor": {"name": "globex", "tier": 2.5},
            "limit": 7.5,
            "note": {"any": "shape"},
            "extra": [1],
            "ok": None,
        },
    )
    assert new["vendor"] == {"name": "globex", "tier": 2.5}
    assert keys == ["extra", "limit", "note", "ok", "vendor"]
    assert apply(STATE, None) == (STATE, [])
    assert STATE["limit"] == 5  # the state passed in is not changed


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"vendor": ["globex"]}, r'state\["vendor"\] from an object to an array'),
        ({"limit": "7"}, r'state\["limit"\] from a number to a string'),
        ({"ok": 1}, r'state\["ok"\] from a boolean to a number'),
        ({"vendor": {"tags": "a"}}, r'state\["vendor"\]\["tags"\] from an array to a string'),
    ],
)
def test_a_type_change_is_refused_naming_the_value(patch: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        apply(STATE, patch)


def test_the_agents_bookkeeping_is_reserved() -> None:
    assert STATE_KEY in RESERVED_KEYS
    with pytest.raises(InvalidInput, match="Ravel writes it"):
        apply({}, {STATE_KEY: {}})
