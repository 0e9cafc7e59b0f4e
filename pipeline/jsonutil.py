"""The boundary every value bound for the database crosses: JSON checks, size limits, redaction,
and the lossless storage escape of characters PostgreSQL refuses.

:func:`to_json_value` is what callers use (run inputs, states, effect results, messages, ...);
:func:`escape_unstorable` / :func:`unescape_unstorable` are what the store's JSON serialiser
and deserialiser apply to every JSON column, so a value reads back exactly as it was stored on
PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from typing import Any

from pipeline.errors import InvalidInput, ValueTooLarge
from pipeline.redact import might_hold_secrets, redact
from pipeline.settings import get_settings

#: Nesting deeper than this is refused: legitimate JSON is far shallower, and recursive code
#: (the encoder, redaction, the storage escape) must never meet a RecursionError.
MAX_DEPTH = 200


class Limit(enum.Enum):
    """Which configured size limit a value is checked against (and which setting raises it)."""

    INPUT = "RAVEL_MAX_INPUT_BYTES"
    STATE = "RAVEL_MAX_STATE_BYTES"
    VALUE = "RAVEL_MAX_VALUE_BYTES"

    @property
    def setting(self) -> str:
        """The environment variable that sets this limit."""
        return self.value

    def bytes(self) -> int:
        """The limit in force, from :func:`pipeline.settings.get_settings`."""
        settings = get_settings()
        if self is Limit.INPUT:
            return settings.max_input_bytes
        if self is Limit.STATE:
            return settings.max_state_bytes
        return settings.max_value_bytes


def canonical(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces): what hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


_CONTAINERS = (dict, list)


def _too_deep(value: Any) -> bool:
    # Level by level, so a deep value cannot exhaust the stack while being measured (and the
    # comprehension keeps a wide value at about a millisecond per 100 KB).
    level = [value] if type(value) in _CONTAINERS else []
    for _ in range(MAX_DEPTH):
        if not level:
            return False
        below: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            below += [c for c in children if type(c) in _CONTAINERS]
        level = below
    return bool(level)


def _deep_error(what: str) -> InvalidInput:
    return InvalidInput(f"{what} is nested more than {MAX_DEPTH} levels deep; flatten it")


def to_json_value(
    value: Any,
    *,
    what: str,
    limit: int | Limit | None = None,
    redact_secrets: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> Any:
    """Return ``value`` as it will read back from the database, or raise :class:`InvalidInput`.

    Round-tripping through JSON means a step sees the same types on its first attempt as on a
    replay (tuples become lists, keys become strings). Nothing is written here: a refusal
    leaves everything as it was.

    Args:
        value: the value to store.
        what: names the value in error messages ("the result of effect 'charge'").
        limit: the size limit: a :class:`Limit` (read from settings) or a number of bytes;
            default :attr:`Limit.VALUE` (``RAVEL_MAX_VALUE_BYTES``).
        redact_secrets: mask secret-named keys and secret-looking strings
            (:func:`pipeline.redact.redact`), as for tool and LLM output.
        default: converts objects JSON cannot encode (``str`` for tool results); by default
            they are refused.

    Raises:
        ValueTooLarge: the JSON is over the limit (an :class:`InvalidInput`).
        InvalidInput: not JSON-serialisable, NaN/Infinity, or nested too deeply.
    """
    try:
        text = json.dumps(value, allow_nan=False, default=default)
    except RecursionError:
        raise _deep_error(what) from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{what} is not JSON-serialisable ({exc}); pass plain dicts, lists, "
            "strings, numbers, booleans and None"
        ) from None
    check = Limit.VALUE if limit is None else limit
    size, cap = len(text), check.bytes() if isinstance(check, Limit) else check
    if size > cap:  # ``text`` is ASCII (ensure_ascii), so its length is its size in bytes
        setting = f"; or raise {check.setting}" if isinstance(check, Limit) else ""
        raise ValueTooLarge(
            f"{what} is {size} bytes of JSON, over the {cap}-byte limit; store "
            f"large data elsewhere and pass a reference{setting}"
        )
    try:
        result = json.loads(text)
    except RecursionError:
        raise _deep_error(what) from None
    # Fewer brackets than the depth limit cannot nest past it: most values stop here.
    if text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(result):
        raise _deep_error(what)
    return redact(result) if redact_secrets and might_hold_secrets(text) else result


def require_object(value: Any, *, what: str, limit: int | Limit | None = None) -> dict[str, Any]:
    """Like :func:`to_json_value`, but the value must be a JSON object (or JSON text of one)."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except RecursionError:
            raise _deep_error(what) from None
        except ValueError:
            raise InvalidInput(
                f'{what} is not valid JSON; pass a JSON object such as {{"order_id": 42}}'
            ) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object (a dict), not {type(value).__name__}")
    result = to_json_value(value, what=what, limit=limit)
    assert isinstance(result, dict)
    return result


# -- lossless storage of characters PostgreSQL refuses ----------------------------------------
#
# JSONB refuses NUL ("\u0000") and lone UTF-16 surrogates. Each such character, and the escape
# character itself, is stored as ESCAPE followed by its code in four hex digits, so decoding
# is exact: an ESCAPE in a stored string always starts an escape.

ESCAPE = "\ue000"  # a private-use character: meaningless in real text
_UNSTORABLE = re.compile("[\x00\ud800-\udfff\ue000]")
_ESCAPED = re.compile("\ue000([0-9a-f]{4})")
# The same characters as ``json.dumps`` (ensure_ascii) writes them; it writes lowercase hex.
UNSTORABLE_IN_JSON = re.compile(r"\\u(?:0000|d[89a-f][0-9a-f]{2}|e000)")
# An ESCAPE as JSON text from the database: raw (PostgreSQL) or \u-escaped (SQLite).
ESCAPED_IN_JSON = ("\ue000", "\\ue000", "\\uE000")


def _escape_char(match: re.Match[str]) -> str:
    return f"{ESCAPE}{ord(match.group()):04x}"


def _unescape_char(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16))


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {fn(k) if isinstance(k, str) else k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, fn) for v in value]
    return value


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists and scalars, as parsed from the database).

    Several times faster than ``copy.deepcopy``, which a step pays on every attempt: it keeps
    no memo and never looks up how to copy a type. Strings and numbers are immutable, shared.
    """
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def escape_unstorable(value: Any) -> Any:
    """A copy of ``value`` whose strings (keys too) hold no NUL, surrogate or bare ESCAPE."""
    return _map_strings(value, lambda s: _UNSTORABLE.sub(_escape_char, s))


def unescape_unstorable(value: Any) -> Any:
    """Undo :func:`escape_unstorable`: the value exactly as it was before storage."""
    return _map_strings(value, lambda s: _ESCAPED.sub(_unescape_char, s) if ESCAPE in s else s)
