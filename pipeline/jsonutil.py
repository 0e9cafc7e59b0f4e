"""Checks on JSON that crosses Ravel's boundary: inputs, states, results."""

from __future__ import annotations

import json
from typing import Any

from pipeline.errors import InvalidInput

MAX_INPUT_BYTES = 64 * 1024
MAX_STATE_BYTES = 256 * 1024


def canonical(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces): what hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def to_json_value(value: Any, *, what: str, limit: int | None = None) -> Any:
    """Return ``value`` as it will read back from the database, or raise :class:`InvalidInput`.

    Round-tripping through JSON means a step sees the same types on its first attempt as on a
    replay (tuples become lists, keys become strings).
    """
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not JSON-serialisable ({exc}); pass plain dicts, lists, "
                           "strings, numbers, booleans and None") from None
    if limit is not None and len(text.encode()) > limit:
        raise InvalidInput(f"{what} is {len(text.encode())} bytes, over the {limit}-byte limit; "
                           "store large data elsewhere and pass a reference")
    return json.loads(text)


def require_object(value: Any, *, what: str, limit: int | None = None) -> dict[str, Any]:
    """Like :func:`to_json_value`, but the value must be a JSON object."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInput(f"{what} is not valid JSON; pass a JSON object such as "
                               '{"order_id": 42}') from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object (a dict), not {type(value).__name__}")
    result = to_json_value(value, what=what, limit=limit)
    assert isinstance(result, dict)
    return result
