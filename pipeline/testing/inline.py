"""Run steps in this process: a dispatcher that queues wake-ups, and a drain loop.

For unit tests of workflows and for scripts (the demo's reference run): no broker, no worker.
Crashes and delivery are tested with real worker processes (:mod:`pipeline.testing.cluster`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline import dispatch
from pipeline.engine import StepOutcome, execute_step
from pipeline.store.decisions import Wakeup


class InlineDispatcher:
    """Collects published wake-ups; :meth:`drain` executes them in order."""

    def __init__(self) -> None:
        """Start with nothing queued."""
        self.queue: deque[Wakeup] = deque()
        self.published: list[tuple[Wakeup, str]] = []

    def __call__(self, wakeup: Wakeup, queue: str) -> None:
        self.queue.append(wakeup)
        self.published.append((wakeup, queue))

    def drain(self, limit: int = 1000) -> list[StepOutcome]:
        """Execute queued wake-ups (and those they publish) until none is left."""
        outcomes: list[StepOutcome] = []
        while self.queue and len(outcomes) < limit:
            w = self.queue.popleft()
            outcomes.append(
                execute_step(
                    w.run_id, w.seq, w.step, worker="inline", workflow=w.workflow, version=w.version
                )
            )
        return outcomes


@contextmanager
def inline_dispatch() -> Iterator[InlineDispatcher]:
    """Install an :class:`InlineDispatcher` for the duration of the block."""
    d = InlineDispatcher()
    dispatch.set_dispatcher(d)
    try:
        yield d
    finally:
        dispatch.set_dispatcher(None)
