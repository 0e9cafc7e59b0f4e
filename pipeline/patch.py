"""State patches from operators: what a fork's patch may change.

A patch sets top-level keys of the run's state (a key's value is replaced whole). Whether a
patched state still suits the workflow cannot be known in general; two mistakes are refused
before anything is written:

* keys Ravel reserves for itself (an agent's bookkeeping);
* a value whose JSON type differs from the one it replaces (an object replaced by a list,
  a number by a string ...), at any depth where both have the key: the steps read the state
  as earlier steps wrote it. ``null`` goes with any type (a key may be cleared or set), and
  integers and floats are both numbers. New keys are accepted.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.errors import InvalidInput

#: State keys Ravel writes itself, never an operator (``_budget`` is meant for operators).
RESERVED_KEYS = {
    "_agent": "an agent's own bookkeeping (its turns, token counts and open waits)",
}


def json_type(value: Any) -> str:
    """The JSON type of a value: object, array, string, number, boolean or null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


def check_reserved(patch: dict[str, Any]) -> None:
    """Refuse a patch that sets a key Ravel reserves."""
    for key, what in RESERVED_KEYS.items():
        if key in patch:
            raise InvalidInput(
                f"the state patch sets {key!r}, which holds {what}: Ravel writes it, an "
                "operator cannot; nothing was changed"
            )


def check_shape(state: dict[str, Any], patch: dict[str, Any]) -> None:
    """Refuse a patch that changes the JSON type of a value the state has.

    Raises:
        InvalidInput: naming the first value whose type would change.
    """
    for key, new in patch.items():
        if key in state:
            _same_type(state[key], new, [key])


def _same_type(old: Any, new: Any, path: list[str]) -> None:
    old_type, new_type = json_type(old), json_type(new)
    if "null" in (old_type, new_type):
        return
    if old_type != new_type:
        where = "state" + "".join(f"[{json.dumps(p, ensure_ascii=False)}]" for p in path)
        raise InvalidInput(
            f"the state patch changes {where} from {_a(old_type)} to {_a(new_type)}; a patch "
            "may change values but not their JSON types (the steps read the state as earlier "
            "steps wrote it). Nothing was changed"
        )
    if old_type == "object":
        for key, value in new.items():
            if key in old:
                _same_type(old[key], value, [*path, key])


def _a(json_type_name: str) -> str:
    return f"an {json_type_name}" if json_type_name[0] in "aeiou" else f"a {json_type_name}"


def apply(state: dict[str, Any], patch: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The state with the patch's keys set, after the checks; and the patched keys, sorted."""
    if not patch:
        return state, []
    check_reserved(patch)
    check_shape(state, patch)
    return {**state, **patch}, sorted(patch)
