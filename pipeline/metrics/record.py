"""What workers measure as they go: step attempts, retries, takeovers, reaper passes, LLM calls.

The instruments are created on first use, in the process that records, so that a Celery
worker can point ``PROMETHEUS_MULTIPROC_DIR`` at its folder before any exists (see
:mod:`pipeline.metrics.multiproc`). Labels are workflow, step, model and outcome names, all
bounded; never a run id. Recording never fails the caller: monitoring is not worth a step.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

log = logging.getLogger("ravel.metrics")
P = ParamSpec("P")

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
LLM_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)


@dataclass(frozen=True)
class Instruments:
    """The process's metrics, in :attr:`registry` (not prometheus_client's global one, so a
    host application's own metrics never clash with Ravel's)."""

    registry: CollectorRegistry
    step_duration: Histogram
    step_attempts: Counter
    step_retries: Counter
    lease_takeovers: Counter
    reaper_passes: Counter
    reaper_actions: Counter
    reaper_errors: Counter
    llm_duration: Histogram
    llm_tokens: Counter
    llm_cost: Counter


@functools.cache
def instruments() -> Instruments:
    """This process's instruments, created on first use."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    reg = CollectorRegistry(auto_describe=True)
    step = ("workflow", "step", "outcome")
    return Instruments(
        registry=reg,
        step_duration=Histogram(
            "ravel_step_duration_seconds",
            "Step attempts from claim to commit, by outcome (next, done, fail, sleep, wait, "
            "retry; lost: the lease was lost before the commit; fenced: cancelled or taken "
            "over during the step).",
            step,
            buckets=STEP_BUCKETS,
            registry=reg,
        ),
        step_attempts=Counter(
            "ravel_step_attempts",
            "Step attempts claimed and finished, by outcome.",
            step,
            registry=reg,
        ),
        step_retries=Counter(
            "ravel_step_retries",
            "Failed step attempts that scheduled a retry.",
            ("workflow", "step"),
            registry=reg,
        ),
        lease_takeovers=Counter(
            "ravel_lease_takeovers",
            "Claims of a run whose running lease had expired (its worker died or froze).",
            ("workflow", "step"),
            registry=reg,
        ),
        reaper_passes=Counter("ravel_reaper_passes", "Reaper passes run.", registry=reg),
        reaper_actions=Counter(
            "ravel_reaper_actions",
            "What reaper passes did: sleeping runs woken, waits expired, wake-ups re-published.",
            ("action",),
            registry=reg,
        ),
        reaper_errors=Counter(
            "ravel_reaper_errors", "Rows or sweeps a reaper pass had to skip.", registry=reg
        ),
        llm_duration=Histogram(
            "ravel_llm_call_duration_seconds",
            "LLM calls made (not replayed from the journal).",
            ("workflow", "model", "outcome"),
            buckets=LLM_BUCKETS,
            registry=reg,
        ),
        llm_tokens=Counter(
            "ravel_llm_tokens",
            "Tokens billed by LLM calls made, by the model that answered.",
            ("workflow", "model"),
            registry=reg,
        ),
        llm_cost=Counter(
            "ravel_llm_cost_usd",
            "Cost in USD of LLM calls made, from the price table.",
            ("workflow", "model"),
            registry=reg,
        ),
    )


def _never_fails(fn: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(fn)
    def safe(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:  # a full disk must not fail the step that is being measured
            log.warning("could not record a metric (%s)", fn.__name__, exc_info=True)

    return safe


@_never_fails
def step_finished(workflow: str, step: str, outcome: str, seconds: float) -> None:
    """One step attempt ended (committed, or dropped because the run was lost)."""
    m = instruments()
    m.step_duration.labels(workflow, step, outcome).observe(seconds)
    m.step_attempts.labels(workflow, step, outcome).inc()
    if outcome == "retry":
        m.step_retries.labels(workflow, step).inc()


@_never_fails
def lease_takeover(workflow: str, step: str) -> None:
    """A claim took a run whose running lease had expired."""
    instruments().lease_takeovers.labels(workflow, step).inc()


@_never_fails
def reaper_pass(woken: int, expired: int, republished: int, errors: int) -> None:
    """One reaper pass ran and did this."""
    m = instruments()
    m.reaper_passes.inc()
    for action, count in (("woken", woken), ("expired", expired), ("republished", republished)):
        # Touched even at zero, so each action's series exists from the first pass.
        m.reaper_actions.labels(action).inc(count)
    m.reaper_errors.inc(errors)


@_never_fails
def llm_usage(workflow: str, model: str | None, tokens: int, cost_usd: float) -> None:
    """An LLM call that was made (and billed) returned."""
    m = instruments()
    name = model or "unknown"
    m.llm_tokens.labels(workflow, name).inc(max(0, tokens))
    m.llm_cost.labels(workflow, name).inc(max(0.0, cost_usd))


@contextmanager
def llm_call(workflow: str, model: str) -> Iterator[None]:
    """Time one LLM request: ``with llm_call(ctx.workflow, model): complete(...)``."""
    started = time.monotonic()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        _observe_llm(workflow, model, outcome, time.monotonic() - started)


@_never_fails
def _observe_llm(workflow: str, model: str, outcome: str, seconds: float) -> None:
    instruments().llm_duration.labels(workflow, model, outcome).observe(seconds)


def recorded_here() -> bool:
    """Whether this process created its instruments (recorded anything)."""
    return instruments.cache_info().currsize > 0


def local_registry() -> Any:
    """The registry of the metrics recorded in this process (for exposition without files)."""
    return instruments().registry
