"""One ``redact()`` applied where text leaves a step: errors, logs, audit data."""

from __future__ import annotations

import re
from typing import Any

_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"xox[abposr]-[A-Za-z0-9\-]{8,}"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._\-]{8,}"),
    re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
]
# Whole key names, or their last ``_``/``-`` part: "access_token" and "OPENAI_API_KEY" are
# secrets, "prompt_tokens" and "total_tokens" are counts.
_SECRET_KEYS = re.compile(
    r"(?i)^(?:.*[_\-])?(authorization|api_?key|token|password|passwd|secret|cookie|"
    r"set[_\-]cookie|credentials?)$"
)
MASK = "[redacted]"
# What could make redact() change a value, as it shows in the value's lowercased JSON text
# (json.dumps): a superset, since the letters, digits, "-" and "_" of keys and secrets are never
# escaped. A key matches when it ends with a secret word (``$`` allows a final newline), so the
# word is followed by the closing quote and the colon. Plain substring tests: a regex over a
# large text costs milliseconds.
_SECRET_HINTS = (
    *(
        f'{word}":'
        for word in (
            "authorization",
            "apikey",
            "api_key",
            "token",
            "password",
            "passwd",
            "secret",
            "cookie",
            "credential",
            "credentials",
        )
    ),
    '\\n":',  # any key ending in a newline
    "sk-",
    "xox",
    "akia",
    "bearer",
    "eyj",
    # Non-ASCII letters that case-insensitive matching equates with s, k and i, as escaped.
    "\\u017f",
    "\\u212a",
    "\\u0130",
    "\\u0131",
)
# Characters a PostgreSQL TEXT column refuses: NUL, and lone surrogates (not UTF-8 encodable).
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return "\\0" if code == 0 else f"\\u{code:04x}"


def storable_text(text: str) -> str:
    """``text`` with NUL shown as ``\\0`` and lone surrogates as ``\\udXXX``: text for humans
    (errors, prompts) that any TEXT column accepts. Everything else is kept as it is."""
    return _UNSTORABLE_TEXT.sub(_visible, text) if _UNSTORABLE_TEXT.search(text) else text


def mask_url(url: str) -> str:
    """``url`` fit to print: its password, if it has one, replaced by ``***``.

    Everything up to the last ``@`` is the credentials (a password may hold an unescaped
    ``/``); a URL without a password is shown as it is, not as if it had one (kombu's
    ``as_uri`` shows ``redis://:**@host`` for a Redis URL without any).
    """
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not (sep and at) or ":" not in creds:
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def redact_text(text: str, limit: int = 4000) -> str:
    """``text`` with secrets masked, CR/LF neutralised (no forged log lines), NUL shown as
    ``\\0`` (see :func:`storable_text`), and cut."""
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    text = storable_text(text.replace("\r", "\\r").replace("\n", "\\n"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def might_hold_secrets(json_text: str) -> bool:
    """False when :func:`redact` would return the value of this JSON text unchanged: a cheap
    test on the text that spares walking values that hold nothing to mask."""
    text = json_text.lower()
    return any(hint in text for hint in _SECRET_HINTS)


def redact(value: Any) -> Any:
    """A copy of a JSON value with secret-looking keys and values masked."""
    if isinstance(value, str):
        for pattern in _PATTERNS:
            value = pattern.sub(MASK, value)
        return value
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and _SECRET_KEYS.search(k) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
