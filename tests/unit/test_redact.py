"""``redact`` / ``redact_text``: secrets masked wherever text leaves a step (B25, B30)."""

from __future__ import annotations

import pytest

from pipeline.redact import MASK, mask_url, redact, redact_text

SECRETS = [
    "sk-abcdefgh12345678",
    "sk-proj-AbC_dEf-1234567890",
    "xoxb-1234-5678-abcdefgh",
    "xoxp-999999999-abcdefgh",
    "AKIAIOSFODNN7EXAMPLE",
    "Bearer abc.def-ghi_jkl",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_secret_values_are_masked_in_text(secret):
    out = redact_text(f"calling vendor with {secret} failed")
    assert secret not in out
    assert MASK in out
    assert out.startswith("calling vendor with ") and out.endswith(" failed")


@pytest.mark.parametrize("secret", SECRETS)
def test_secret_values_are_masked_in_json(secret):
    value = {"note": f"key={secret}", "items": [secret, {"deep": [secret]}], "n": 3}
    out = redact(value)
    assert secret not in repr(out)
    assert out["n"] == 3
    assert value["items"][0] == secret  # the input is not modified


@pytest.mark.parametrize(
    "key",
    [
        "authorization",
        "Authorization",
        "api_key",
        "apikey",
        "OPENAI_API_KEY",
        "password",
        "client_secret",
        "access_token",
        "Cookie",
    ],
)
def test_secret_looking_keys_are_masked_whatever_the_value(key):
    out = redact({key: "plain value", "safe": "plain value"})
    assert out == {key: MASK, "safe": "plain value"}


def test_count_keys_that_merely_contain_a_secret_word_are_kept():
    usage = {"prompt_tokens": 10, "total_tokens": 12, "tokens": 12, "secretary": "Ann"}
    assert redact(usage) == usage


def test_secret_keys_mask_whole_nested_values():
    out = redact({"headers": {"Authorization": {"scheme": "basic", "v": "x"}}})
    assert out == {"headers": {"Authorization": MASK}}


def test_ordinary_text_and_values_are_untouched():
    value = {"order": 42, "ok": True, "none": None, "price": 1.5, "text": "skip the sk- prefix"}
    assert redact(value) == value
    assert redact_text("refund 120 EUR to order 7") == "refund 120 EUR to order 7"


def test_line_breaks_cannot_forge_log_lines():
    out = redact_text("boom\nINFO fake line\r\nmore")
    assert "\n" not in out and "\r" not in out
    assert out == "boom\\nINFO fake line\\r\\nmore"


def test_text_is_cut_to_the_limit():
    out = redact_text("x" * 5000)
    assert len(out) == 4000 and out.endswith("…")
    assert redact_text("y" * 10, limit=5) == "yyyy…"
    assert redact_text("y" * 5, limit=5) == "y" * 5


def test_redaction_happens_before_the_cut():
    secret = "sk-abcdefgh12345678"
    out = redact_text("a" * 3990 + secret)
    assert "sk-abc" not in out


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@127.0.0.1:6379/9", "redis://:***@127.0.0.1:6379/9"),
        ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:***@127.0.0.1:5672//"),
        ("postgresql://ravel:pa/ss@db:5432/ravel", "postgresql://ravel:***@db:5432/ravel"),
        ("postgresql://ravel:p@ss@db/ravel", "postgresql://ravel:***@db/ravel"),
        # No password: shown as it is, not as if it had one.
        ("redis://127.0.0.1:6379/9", "redis://127.0.0.1:6379/9"),
        ("postgresql://postgres@127.0.0.1/ravel", "postgresql://postgres@127.0.0.1/ravel"),
        ("filesystem://", "filesystem://"),
        ("sqlite:////srv/ravel/ravel.db", "sqlite:////srv/ravel/ravel.db"),
    ],
)
def test_a_url_is_shown_with_its_password_masked_and_none_invented(url: str, shown: str) -> None:
    assert mask_url(url) == shown
