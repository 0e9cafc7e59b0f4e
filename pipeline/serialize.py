"""The one JSON form of Ravel's views, shared by the HTTP API, the CLI's ``--json`` and the
Django views: dataclasses as objects, datetimes as ISO 8601 text in UTC, enums as their value.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from enum import Enum
from typing import Any


def to_json(value: Any) -> Any:
    """``value`` as plain JSON types (dict, list, str, int, float, bool, None).

    Dataclasses become objects of their fields, datetimes ISO 8601 text in UTC
    (``2026-12-01T09:30:00.123456+00:00``), enums their value; dict keys become text.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return to_json(value.value)
    if isinstance(value, datetime):
        # Stored times are aware UTC; a naive one (never from the store) is taken as UTC.
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


class JsonView:
    """Gives a frozen view dataclass its JSON form: ``run.to_json()``."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """This view as a JSON object (see :func:`to_json`)."""
        found = to_json(self)
        assert isinstance(found, dict)
        return found


__all__ = ["JsonView", "to_json"]
