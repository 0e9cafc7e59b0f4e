"""The script: which reply answers each turn, top-level or by route."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.testing._scripted.replies import Reply
from pipeline.testing._scripted.validation import (
    ScriptError,
    _parse_turns,
    _reject_unknown,
    _require,
)

TOP_LEVEL_ROUTE = -1
"""Route index of the script's top-level turns (routes are numbered from 0)."""


@dataclass(frozen=True)
class Route:
    """Turns used when ``match`` occurs in the first user message."""

    match: str
    turns: tuple[Reply, ...]


@dataclass(frozen=True)
class Script:
    """What the server answers; build it with :meth:`from_dict` or :meth:`load`.

    Attributes:
        turns: Replies for turn 0, 1, 2, ...; past the end the last one repeats.
        routes: Checked in order; the first whose ``match`` occurs in the first user message
            replaces ``turns``.
    """

    turns: tuple[Reply, ...] = ()
    routes: tuple[Route, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Script:
        """Validate a JSON-compatible script.

        Args:
            data: ``{"turns": [reply, ...], "routes": [{"match": str, "turns": [...]}]}``.

        Returns:
            The validated script.

        Raises:
            ScriptError: An entry is missing, mistyped or unknown (typos are not ignored).
        """
        _require(isinstance(data, Mapping), "the script must be a JSON object")
        _reject_unknown(data, frozenset({"turns", "routes"}), "script")
        turns = _parse_turns(data.get("turns", []), "turns", allow_empty=True)
        routes_data = data.get("routes", [])
        _require(isinstance(routes_data, list), "routes must be a list")
        routes = []
        for index, route in enumerate(routes_data):
            where = f"routes[{index}]"
            _require(isinstance(route, Mapping), f"{where} must be an object")
            _reject_unknown(route, frozenset({"match", "turns"}), where)
            _require(isinstance(route.get("match"), str), f"{where}.match must be a string")
            routes.append(Route(route["match"], _parse_turns(route.get("turns"), f"{where}.turns")))
        _require(bool(turns or routes), "the script needs turns or routes")
        return cls(turns, tuple(routes))

    @classmethod
    def load(cls, path: str | Path) -> Script:
        """Read and validate a JSON script file.

        Raises:
            OSError: The file cannot be read.
            ScriptError: The file is not valid JSON or not a valid script.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ScriptError(f"{path}: invalid JSON: {exc}") from exc
        return cls.from_dict(data)

    def select(self, first_user_text: str) -> tuple[int, tuple[Reply, ...]] | None:
        """Return ``(route index, turns)`` for a conversation, or None if nothing applies."""
        for index, route in enumerate(self.routes):
            if route.match in first_user_text:
                return index, route.turns
        return (TOP_LEVEL_ROUTE, self.turns) if self.turns else None
