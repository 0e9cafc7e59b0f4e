"""What an invariant check returns: how much it examined and what it found wrong."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Violation:
    """One breach of an invariant, on one run (or on none, for global ones)."""

    run_id: str | None
    detail: str


@dataclass
class Verdict:
    """One invariant's result.

    Attributes:
        name: the invariant (its function's name).
        runs: runs examined.
        events: events examined (journal rows, posts, audit events ... as the check counts).
        violations: what broke it.
    """

    name: str
    runs: int = 0
    events: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the invariant held."""
        return not self.violations

    def fail(self, run_id: str | None, detail: str) -> None:
        """Record a violation."""
        self.violations.append(Violation(run_id, detail))
