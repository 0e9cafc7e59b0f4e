"""Run and wait ids: str UUIDs, checked before they reach SQL."""

from __future__ import annotations

import uuid
from typing import Any

#: longer text is refused before parsing (a UUID's longest spelling is 45 characters)
_LONGEST = 64


def parse_id(value: Any) -> str | None:
    """``value`` as a canonical str UUID (lower case, hyphenated), or None if it is not one.

    On PostgreSQL the ids are native ``uuid`` columns, which refuse other text with an error
    instead of matching nothing: whatever names a run from outside (a message, a URL, an
    argument) is checked here first.
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or len(value) > _LONGEST:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


__all__ = ["parse_id"]
