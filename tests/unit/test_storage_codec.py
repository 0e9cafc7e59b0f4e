"""The storage boundary's pure parts: the lossless JSON codec of the store's engines, the size,
depth and redaction checks of ``to_json_value``, their settings, and NUL in error text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.errors import ConfigurationError, InvalidInput, ValueTooLarge
from pipeline.jsonutil import (
    MAX_DEPTH,
    Limit,
    copy_json,
    require_object,
    to_json_value,
)
from pipeline.redact import MASK, might_hold_secrets, redact, redact_text, storable_text
from pipeline.settings import reload_settings
from pipeline.store._db import dumps, loads

AWKWARD_STRINGS = [
    "\x00",
    "a\x00b",
    "\x00\x00",
    "\ud800",
    "\udfff",
    "x\ud83dy",
    "\ud83d\ude00",  # a pair
    "\ue000",
    "\ue0000000",
    "\ue000zz",
    "\ue000\x00",
    "😀",
    "é",
    "\\u0000",
    "\\ue000",
    "",
]


def _jsonb_accepts(text: str) -> bool:
    """Whether PostgreSQL's JSONB would take this text: no NUL, no lone surrogate."""
    strings: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            strings.extend(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(text))  # decoding joins valid surrogate pairs; lone ones stay
    try:
        "".join(strings).encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in "".join(strings)


def test_the_check_itself_sees_what_jsonb_refuses():
    assert not _jsonb_accepts(json.dumps({"k": "\x00"}))
    assert not _jsonb_accepts(json.dumps(["\ud800"]))
    assert _jsonb_accepts(json.dumps(["😀"]))


@pytest.mark.parametrize("text", AWKWARD_STRINGS)
def test_awkward_strings_round_trip_exactly_in_keys_and_values(text):
    value = {text: text, "list": [text, {text: [text]}], "n": 1.5, "none": None}
    stored = dumps(value)
    assert _jsonb_accepts(stored)
    assert loads(stored) == value
    assert loads(stored.encode()) == value
    # PostgreSQL returns JSONB as text with raw (not \u-escaped) characters.
    assert loads(json.dumps(json.loads(stored), ensure_ascii=False)) == value


def test_ordinary_values_are_stored_as_plain_json():
    value = {"order": 42, "items": ["a", "é", "😀"], "ok": True, "at": None}
    assert dumps(value) == json.dumps(value, separators=(",", ":"))
    assert loads(dumps(value)) == value


def test_escaped_text_stays_readable_and_datetimes_still_serialise():
    at = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    stored = dumps({"k\x00": "v\x00", "at": at})
    assert json.loads(stored) == {"k\ue0000000": "v\ue0000000", "at": at.isoformat()}
    assert loads(stored) == {"k\x00": "v\x00", "at": at.isoformat()}


def test_a_stray_escape_character_from_older_data_is_left_alone():
    assert loads(json.dumps(["\ue000zz", "\ue000"])) == ["\ue000zz", "\ue000"]


# -- to_json_value -------------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch):
    for limit in Limit:
        monkeypatch.delenv(limit.setting, raising=False)
    reload_settings()
    yield monkeypatch
    monkeypatch.undo()
    reload_settings()


def test_the_default_limits_come_from_settings(env):
    assert [limit.bytes() for limit in Limit] == [64 * 1024, 256 * 1024, 1024 * 1024]
    env.setenv("RAVEL_MAX_INPUT_BYTES", "10")
    env.setenv("RAVEL_MAX_STATE_BYTES", "20")
    env.setenv("RAVEL_MAX_VALUE_BYTES", "30")
    reload_settings()
    assert [limit.bytes() for limit in Limit] == [10, 20, 30]


@pytest.mark.parametrize("raw", ["many", "1.5", "0", "-3"])
def test_bad_limit_settings_are_refused(env, raw):
    env.setenv("RAVEL_MAX_VALUE_BYTES", raw)
    with pytest.raises(ConfigurationError, match="RAVEL_MAX_VALUE_BYTES"):
        reload_settings()


def test_over_the_value_limit_names_the_value_the_limit_and_the_setting(env):
    env.setenv("RAVEL_MAX_VALUE_BYTES", "100")
    reload_settings()
    assert to_json_value("x" * 98, what="v") == "x" * 98  # 100 bytes as JSON: at the limit
    with pytest.raises(ValueTooLarge) as caught:
        to_json_value("x" * 99, what="the result of effect 'big'")
    message = str(caught.value)
    assert message.startswith("the result of effect 'big' is 101 bytes of JSON")
    assert "over the 100-byte limit" in message and "RAVEL_MAX_VALUE_BYTES" in message
    assert isinstance(caught.value, InvalidInput)


def test_an_explicit_limit(env):
    with pytest.raises(ValueTooLarge, match="over the 5-byte limit; store large data"):
        to_json_value("xxxxx", what="v", limit=5)
    env.setenv("RAVEL_MAX_STATE_BYTES", "5")
    reload_settings()
    with pytest.raises(ValueTooLarge, match="RAVEL_MAX_STATE_BYTES"):
        to_json_value({"a": 1}, what="ctx.state", limit=Limit.STATE)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):  # ``depth`` nested lists
        value = [value]
    return value


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 10_000])
def test_deep_values_are_refused_without_a_recursion_error(depth):
    with pytest.raises(InvalidInput, match=f"v is nested more than {MAX_DEPTH} levels deep"):
        to_json_value(_nested(depth), what="v")
    with pytest.raises(InvalidInput, match="nested more than"):
        require_object('{"a": ' + "[" * depth + "]" * depth + "}", what="v")


def test_values_at_the_depth_limit_and_bracketed_text_are_accepted():
    assert to_json_value(_nested(MAX_DEPTH), what="v") == _nested(MAX_DEPTH)
    assert to_json_value("[" * 1000, what="v") == "[" * 1000  # brackets in a string


def test_redact_secrets_masks_secret_named_keys_only_when_asked():
    value = {"api_key": "k", "user": {"password": "p", "name": "ann"}, "tokens": 3}
    assert to_json_value(value, what="v") == value
    assert to_json_value(value, what="v", redact_secrets=True) == {
        "api_key": MASK,
        "user": {"password": MASK, "name": "ann"},
        "tokens": 3,
    }


def test_values_become_what_reads_back():
    assert to_json_value({"t": (1, 2), 3: "x"}, what="v") == {"t": [1, 2], "3": "x"}
    with pytest.raises(InvalidInput, match="not JSON-serialisable"):
        to_json_value({"x": float("nan")}, what="v")
    with pytest.raises(InvalidInput, match="not JSON-serialisable"):
        to_json_value({"at": datetime(2024, 1, 1, tzinfo=UTC)}, what="v")
    at = datetime(2024, 1, 1, tzinfo=UTC)
    assert to_json_value({"at": at}, what="v", default=str) == {"at": str(at)}


# -- text columns --------------------------------------------------------------------------


def test_redact_text_shows_nul_and_lone_surrogates_visibly():
    assert redact_text("bad\x00byte \ud800 and\nnext") == "bad\\0byte \\ud800 and\\nnext"


def test_storable_text_keeps_everything_else():
    assert storable_text("line 1\nline 2 é 😀\x00") == "line 1\nline 2 é 😀\\0"
    plain = "nothing to change\n"
    assert storable_text(plain) is plain


SECRET_BEARING = [
    {"api_key": 1},
    {"OPENAI_API_KEY": "x"},
    {"a": [{"Password": "p"}]},
    {"passwd": 1},
    {"client_secret": 1},
    {"access_token": 1},
    {"Set-Cookie": 1},
    {"credentials": 1},
    {"authorization": 1},
    {"token\n": 1},
    {"pa\u017f\u017fword": 1},
    {"api_\u212aey": 1},
    {"apiKEY": 2},
    {"x": "key sk-abcdefgh12345678"},
    {"x": ["Bearer\nabcdefghijkl"]},
    {"x": "AKIAIOSFODNN7EXAMPLE"},
    {"x": "xoxb-1234-5678-abcdefgh"},
    {"x": "eyJhbGciOiJIUzI1.eyJzdWIiOiIx.dozjgNryP4J3"},
]


@pytest.mark.parametrize("value", SECRET_BEARING)
def test_the_redaction_prefilter_never_skips_a_value_redact_would_change(value):
    assert redact(value) != value
    assert might_hold_secrets(json.dumps(value))
    assert to_json_value(value, what="v", redact_secrets=True) == redact(value)


def test_the_redaction_prefilter_passes_ordinary_values():
    usage = {"prompt_tokens": 10, "total_tokens": 12, "note": "my token", "tokens": ["a"]}
    assert not might_hold_secrets(json.dumps(usage))
    assert to_json_value(usage, what="v", redact_secrets=True) == usage


def test_copy_json_is_a_deep_copy_that_nothing_done_to_the_copy_reaches():
    # What a step's attempt gets while the claim keeps the state for its step record (fork).
    original = loads(dumps({"a": {"b": [1, {"c": "x"}]}, "n": 1.5, "s": "t", "none": None}))
    kept = json.dumps(original, sort_keys=True)
    copy = copy_json(original)
    assert copy == original
    copy["a"]["b"][1]["c"] = "changed"
    copy["a"]["b"].append(2)
    copy["a"]["new"] = True
    copy["n"] = 0
    assert json.dumps(original, sort_keys=True) == kept
