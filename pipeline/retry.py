"""Retry policies: a frozen description and a pure function from attempt to delay."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a failing step runs again.

    Attributes:
        max_attempts: attempts in all, the first included; 1 means never retry. An attempt
            whose worker died (SIGKILL, out of memory) counts like one that raised, so a
            step that kills its worker every time ends ``failed`` instead of looping. Counted
            since the last operator retry.
        initial_delay: seconds before the second attempt.
        backoff: factor applied to the delay after each further failure.
        max_delay: upper bound of any delay, in seconds.
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if self.backoff < 1:
            raise ValueError("backoff must be at least 1")

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) failed."""
        return min(self.max_delay, self.initial_delay * self.backoff ** (failed_attempt - 1))

    def should_retry(self, failed_attempt: int) -> bool:
        """Whether another attempt follows attempt number ``failed_attempt``."""
        return failed_attempt < self.max_attempts


DEFAULT_RETRY = RetryPolicy()
