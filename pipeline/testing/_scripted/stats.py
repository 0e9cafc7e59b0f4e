"""What the server billed: the stats types and the thread-safe :class:`Ledger`."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import TypedDict

ANONYMOUS_RUN = "-"
"""Run key of requests that carry no ``X-Ravel-Run-Id`` header."""


class TurnStats(TypedDict):
    """Requests answered for one turn."""

    calls: int
    failed_calls: int


class Stats(TypedDict):
    """What the server billed, for one run or in total.

    ``calls`` counts 200 responses, ``failed_calls`` scripted error responses (429, 500, ...);
    the token counts sum the ``usage`` of the 200 responses. ``by_turn`` is keyed by the turn as
    a string (JSON object keys), so in-process and over-HTTP stats compare equal.
    """

    calls: int
    failed_calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    by_turn: dict[str, TurnStats]


def _empty_stats() -> Stats:
    return Stats(
        calls=0,
        failed_calls=0,
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        by_turn={},
    )


class Ledger:
    """Thread-safe counters: what was billed per run and in total, and the fault counters."""

    def __init__(self) -> None:
        """Start with nothing billed."""
        self._lock = threading.Lock()
        self._total = _empty_stats()
        self._runs: dict[str, Stats] = {}
        self._seen: dict[tuple[str, int, int], int] = {}

    def next_attempt(self, run: str, route: int, turn: int) -> int:
        """Count a request and return how many came before it for this run, route and turn."""
        with self._lock:
            key = (run, route, turn)
            seen = self._seen.get(key, 0)
            self._seen[key] = seen + 1
            return seen

    def record(self, run: str, turn: int, usage: Mapping[str, int] | None) -> None:
        """Record an answered request: billed with ``usage``, or failed if ``usage`` is None."""
        with self._lock:
            run_stats = self._runs.setdefault(run, _empty_stats())
            for stats in (self._total, run_stats):
                by_turn = stats["by_turn"].setdefault(str(turn), TurnStats(calls=0, failed_calls=0))
                if usage is None:
                    stats["failed_calls"] += 1
                    by_turn["failed_calls"] += 1
                    continue
                stats["calls"] += 1
                by_turn["calls"] += 1
                stats["prompt_tokens"] += usage["prompt_tokens"]
                stats["completion_tokens"] += usage["completion_tokens"]
                stats["total_tokens"] += usage["total_tokens"]

    def stats(self, run_id: str | None = None) -> Stats:
        """Return a copy of the totals, or of one run's counters (zeros for an unknown run)."""
        with self._lock:
            source = self._total if run_id is None else self._runs.get(run_id)
            return copy.deepcopy(source) if source is not None else _empty_stats()

    def reset(self) -> None:
        """Forget all counters, fault counters included (scripted faults fire again)."""
        with self._lock:
            self._total = _empty_stats()
            self._runs.clear()
            self._seen.clear()
