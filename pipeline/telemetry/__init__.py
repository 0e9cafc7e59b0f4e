"""What a step leaves for operators besides its commit: log fields and trace spans.

The engine wraps each wake-up in :func:`step_scope` and calls :func:`claimed` once it holds
the run; journaled calls go through :func:`traced_call`. Log lines carry the run's fields
(:mod:`pipeline.telemetry.logs`); with the ``otel`` extra, spans are recorded
(:mod:`pipeline.telemetry.spans`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pipeline.telemetry import logs, spans
from pipeline.telemetry.spans import traced_call


class StepScope:
    """One wake-up of a step: its log fields, and its span once the run is claimed."""

    def __init__(self, run_id: str, worker: str | None) -> None:
        """For the wake-up of run ``run_id`` on ``worker``."""
        self.run_id = run_id
        self.worker = worker
        self.span: Any = None
        self.attempt: int | None = None
        self._token: Any = None

    def claimed(self, workflow: str, version: int, step: str, seq: int, attempt: int) -> None:
        """The run is claimed: bind the attempt to the log fields and start the step span."""
        self.attempt = attempt
        logs.bind(workflow=workflow, step=step, seq=seq, attempt=attempt)
        found = spans.tracer()
        if found is None:
            return
        from opentelemetry import context, trace

        self.span = found.start_span(
            f"{workflow}.{step}",
            context=spans.run_context(self.run_id),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "ravel.run_id": self.run_id,
                "ravel.workflow": workflow,
                "ravel.workflow_version": version,
                "ravel.step": step,
                "ravel.seq": seq,
                "ravel.attempt": attempt,
                "ravel.worker": self.worker or "",
            },
        )
        self._token = context.attach(trace.set_span_in_context(self.span))

    def finished(self, status: str | None, error: str | None, *, committed: bool) -> None:
        """Record how the attempt ended (the run's status after it, the attempt's error)."""
        if self.span is None:
            return
        self.span.set_attribute("ravel.committed", committed)
        if status is not None:
            self.span.set_attribute("ravel.status", status)
        if error:
            spans.fail(self.span, error)

    def close(self, exc: BaseException | None) -> None:
        """End the span (failed if the engine itself raised ``exc``)."""
        if self.span is None:
            return
        from opentelemetry import context

        if exc is not None:
            spans.fail(self.span, f"{type(exc).__name__}: {exc}")
        context.detach(self._token)
        self.span.end()


_scope: ContextVar[StepScope | None] = ContextVar("ravel_step_scope", default=None)


@contextmanager
def step_scope(
    run_id: str, seq: int, step: str, workflow: str | None, worker: str | None = None
) -> Iterator[StepScope]:
    """Around one wake-up: log lines carry the run's fields; :func:`claimed` starts a span."""
    scope = StepScope(run_id, worker)
    token = _scope.set(scope)
    outer = logs.current()
    failure: BaseException | None = None
    try:
        with logs.run_context(run_id=run_id, workflow=workflow, step=step, seq=seq):
            yield scope
    except BaseException as exc:
        failure = exc
        raise
    finally:
        scope.close(failure)
        _scope.reset(token)
        if scope.attempt is not None and outer.get("run_id") == run_id:
            # The task's own lines after the step (Celery's "succeeded") name the attempt too.
            logs.bind(attempt=scope.attempt)


def claimed(workflow: str, version: int, step: str, seq: int, attempt: int) -> None:
    """The current wake-up claimed its run (see :meth:`StepScope.claimed`)."""
    scope = _scope.get()
    if scope is not None:  # outside a scope there is nothing to bind to or to end
        scope.claimed(workflow, version, step, seq, attempt)


__all__ = ["StepScope", "claimed", "logs", "spans", "step_scope", "traced_call"]
