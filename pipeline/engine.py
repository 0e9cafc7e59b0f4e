"""The step protocol: claim, load, work outside any transaction, one fenced commit, hand on."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from pipeline import dispatch, faults, metrics, notify, telemetry
from pipeline.context import AttemptFenced, StepContext
from pipeline.errors import InvalidInput, InvalidStepResult
from pipeline.ids import parse_id
from pipeline.jsonutil import Limit, copy_json, to_json_value
from pipeline.lease import keeper
from pipeline.redact import redact, redact_text, storable_text
from pipeline.retry import RetryPolicy
from pipeline.settings import get_settings
from pipeline.status import RunStatus
from pipeline.store import Database, get_db, runs, sweeps
from pipeline.store import steps as store
from pipeline.store.decisions import Wakeup
from pipeline.store.steps import Claim, CommitPlan, WaitSpec
from pipeline.transitions import (
    TRANSITION_TYPES,
    Done,
    Fail,
    Next,
    Sleep,
    WaitForApproval,
    WaitForEvent,
)
from pipeline.views import WaitResult
from pipeline.workflow import StepDef, Workflow, all_workflows, find_workflow, served_versions

log = logging.getLogger("ravel.engine")


@dataclass(frozen=True)
class StepOutcome:
    """What one wake-up did.

    Attributes:
        claimed: False when the wake-up found nothing to do (duplicate, stale, parked).
        committed: False when the lease was lost before the commit (nothing was published).
        status: the run's status after the commit.
        wakeup: the next wake-up published, if the run is runnable.
        wait_id: the wait the run parked on, if it parked.
        error: the attempt's error (redacted) when it failed, whether or not it will retry.
        traceback: where the failed attempt raised (redacted), for monitoring.
        retry_in: seconds until the retry of a failed attempt (None: no retry scheduled).
    """

    claimed: bool
    committed: bool = False
    status: RunStatus | None = None
    wakeup: Wakeup | None = None
    wait_id: str | None = None
    error: str | None = None
    traceback: str | None = None
    retry_in: float | None = None


NOTHING_TO_DO = StepOutcome(claimed=False)


def execute_step(
    run_id: str,
    seq: int,
    step: str,
    *,
    worker: str,
    workflow: str | None = None,
    version: int | None = None,
) -> StepOutcome:
    """Run one attempt of ``step`` of a run if the wake-up is current; publish what follows.

    Only runs of the workflow versions this process serves are claimed. ``workflow`` and
    ``version`` are what the wake-up carries: a worker that does not serve the version leaves
    the run for one that does, and the reaper re-publishes the wake-up. Log lines meanwhile
    carry the run's fields; with the ``otel`` extra the attempt is a span of the run's trace.
    """
    with telemetry.step_scope(run_id, seq, step, workflow, worker) as scope:
        outcome = _execute_step(
            run_id, seq, step, worker=worker, workflow=workflow, version=version
        )
        scope.finished(
            outcome.status.value if outcome.status else None,
            outcome.error,
            committed=outcome.committed,
        )
        return outcome


def _execute_step(
    run_id: str,
    seq: int,
    step: str,
    *,
    worker: str,
    workflow: str | None,
    version: int | None,
) -> StepOutcome:
    if parse_id(run_id) is None:
        # Only a hand-made or corrupted message names no run: nothing to claim.
        log.warning("wake-up for %r ignored: not a run id", str(run_id)[:80])
        return NOTHING_TO_DO
    db = get_db()
    settings = get_settings()
    if workflow is not None and version is not None:
        if version not in served_versions(workflow):
            _leave_for_another_worker(db, run_id, seq, workflow, version)
            return NOTHING_TO_DO
        served = [(workflow, version)]  # the wake-up's own version, which this worker serves
    else:
        served = _served(workflow, step)
    claim = store.claim(db, run_id, seq, step, settings.lease_seconds, worker, served)
    if claim is None:
        return NOTHING_TO_DO
    telemetry.claimed(
        claim.workflow,
        claim.workflow_version,
        claim.step,
        claim.seq,
        claim.attempt - claim.retry_base,
    )
    started = time.monotonic()
    if claim.attempt - 1 > claim.recorded_attempt:
        # An earlier attempt of this seq never committed: this claim took an expired lease.
        metrics.lease_takeover(claim.workflow, claim.step)
    faults.fault("after_claim", claim.step)
    plan = plan_attempt(claim)
    if plan is None:
        log.warning(
            "run %s: cancelled or taken over during step %s; this attempt stopped "
            "before its next call and commits nothing",
            run_id,
            claim.step,
        )
        metrics.step_finished(claim.workflow, claim.step, "fenced", time.monotonic() - started)
        return StepOutcome(claimed=True, committed=False)
    faults.fault("before_commit", claim.step)
    done = store.commit(db, claim, plan, settings.redispatch_after)
    outcome = plan.outcome if done is not None else "lost"
    metrics.step_finished(claim.workflow, claim.step, outcome, time.monotonic() - started)
    if done is None:
        log.warning("run %s: lease lost before commit; the step's outcome was dropped", run_id)
        return StepOutcome(claimed=True, committed=False)
    faults.fault("after_commit_before_publish", claim.step)
    wakeup = None
    if done.status is RunStatus.PENDING:
        wakeup = Wakeup(run_id, claim.workflow, done.step, done.seq, claim.workflow_version)
        dispatch.publish(wakeup)
    elif done.status is RunStatus.WAITING and notify.has_handlers(claim.workflow):
        from pipeline.api import get_run  # the API builds the view the handlers receive

        notify.parked(get_run(run_id))
    retry_in = plan.wake_after if plan.outcome == "retry" else None
    return StepOutcome(
        True,
        True,
        done.status,
        wakeup,
        done.wait_id,
        plan.step_error,
        plan.step_traceback,
        retry_in,
    )


def _served(workflow: str | None, step: str) -> list[tuple[str, int]]:
    """The (workflow, version) pairs this process serves that the wake-up may claim."""
    if workflow is not None:
        return [(workflow, v) for v in served_versions(workflow)]
    # A caller that does not say (tests, scripts): any loaded workflow with that step.
    return [(f.name, f.version) for f in all_workflows() if step in f.steps]


def _leave_for_another_worker(
    db: Database, run_id: str, seq: int, workflow: str, version: int
) -> None:
    """A wake-up for a workflow version this worker does not serve: leave the run pending.

    When a worker that serves the version was seen recently, the reaper re-publishes the
    wake-up at its next pass (it may reach this worker again: a bounce costs one message per
    reaper interval). Otherwise the usual backoff applies, and ``ravel runs show`` says that
    no worker serves the version.
    """
    served_elsewhere = runs.version_served_recently(db, workflow, version)
    log.info(
        "run %s: %s v%d is not served by this worker; left for one that serves it%s",
        run_id,
        workflow,
        version,
        "" if served_elsewhere else " (none seen recently)",
    )
    if served_elsewhere:
        sweeps.unclaimable_soon(db, run_id, seq)


def plan_attempt(claim: Claim) -> CommitPlan | None:
    """Run the step function for a claimed run and decide what to commit.

    None: the attempt found that it no longer holds the run (cancelled or taken over) and
    stopped before its next journaled call; nothing is to be committed.
    """
    flow = find_workflow(claim.workflow, claim.workflow_version)
    step_def = flow.steps.get(claim.step) if flow else None
    if flow is None or step_def is None:
        return _fatal(
            claim, f"{claim.workflow} version {claim.workflow_version} has no step {claim.step!r}"
        )
    attempt = claim.attempt - claim.retry_base
    if attempt > step_def.retry.max_attempts:
        return _fatal(
            claim,
            f"attempt {attempt} of step {claim.step!r} exceeds max_attempts="
            f"{step_def.retry.max_attempts}: earlier attempts died without finishing "
            "(the worker was killed or ran out of memory)",
        )
    db = get_db()
    ctx = StepContext(
        db,
        run_id=claim.run_id,
        workflow=claim.workflow,
        step=claim.step,
        seq=claim.seq,
        attempt=attempt,
        # A copy: the claim keeps the state the attempt started from, for its step record.
        # The state is parsed JSON: copy_json is several times cheaper than copy.deepcopy.
        state=copy_json(claim.state),
        wait_result=WaitResult.from_json(claim.wait_result) if claim.wait_result else None,
        message_count=claim.message_count,
        fencing=claim.fencing,
        owner=claim.lease_owner,
    )
    lease = keeper(db, get_settings().lease_seconds)
    lease.hold(claim.run_id, claim.fencing, claim.lease_owner)
    ctx.watch_lease(lease.is_lost)
    try:
        plan = _plan_transition(flow, claim, ctx, step_def.fn(ctx))
    except AttemptFenced:
        return None
    except Exception as exc:
        plan = _plan_failure(claim, step_def, attempt, exc)
    finally:
        lease.release()
    if ctx.fenced_out:  # the step swallowed the signal: it still must not commit
        return None
    # What the step itself put on record comes before its outcome.
    plan.events[:0] = ctx.audit_events
    return plan


def _plan_transition(flow: Workflow, claim: Claim, ctx: StepContext, result: Any) -> CommitPlan:
    if not isinstance(result, TRANSITION_TYPES):
        raise InvalidStepResult(
            f"step {claim.step!r} returned {type(result).__name__} {result!r:.80}, not a "
            "transition; return Next, Done, Fail, Sleep, WaitForApproval or WaitForEvent"
        )
    state = to_json_value(ctx.state, what="ctx.state", limit=Limit.STATE, redact_secrets=True)
    base: dict[str, Any] = {
        "state": state,
        "messages": ctx.new_messages,
        "advance": True,
        "step_status": "succeeded",
    }
    succeeded: tuple[str, dict[str, Any]] = ("step.succeeded", {"attempt": claim.attempt})
    if isinstance(result, Next):
        _check_step(flow, result.step, "Next")
        succeeded[1]["next"] = result.step
        return CommitPlan(
            RunStatus.PENDING, result.step, outcome="next", events=[succeeded], **base
        )
    if isinstance(result, Done):
        value = to_json_value(result.result, what="the Done result")
        return CommitPlan(
            RunStatus.SUCCEEDED,
            claim.step,
            outcome="done",
            result=value,
            events=[succeeded, ("run.succeeded", {})],
            **base,
        )
    if isinstance(result, Fail):
        reason = redact_text(str(result.reason))
        return CommitPlan(
            RunStatus.FAILED,
            claim.step,
            outcome="fail",
            error=reason,
            events=[("run.failed", {"error": reason})],
            **{**base, "advance": False, "step_status": "failed"},
        )
    if isinstance(result, Sleep):
        _check_step(flow, result.then, "Sleep")
        seconds = result.duration.total_seconds()
        return CommitPlan(
            RunStatus.SLEEPING,
            result.then,
            outcome="sleep",
            wake_after=seconds,
            events=[succeeded, ("run.sleeping", {"seconds": seconds})],
            **base,
        )
    return _plan_wait(flow, claim, result, base, succeeded)


def _plan_wait(
    flow: Workflow,
    claim: Claim,
    result: WaitForApproval | WaitForEvent,
    base: dict[str, Any],
    succeeded: tuple[str, dict[str, Any]],
) -> CommitPlan:
    kind = "approval" if isinstance(result, WaitForApproval) else "event"
    _check_step(flow, result.then, type(result).__name__)
    timeout = result.timeout.total_seconds() if result.timeout is not None else None
    if isinstance(result, WaitForApproval):
        approvers = result.approvers
        if not approvers or not all(isinstance(a, str) and a for a in approvers):
            raise InvalidStepResult("WaitForApproval needs approvers: a non-empty list of names")
        data = to_json_value(result.data, what="WaitForApproval data") if result.data else None
        prompt = storable_text(str(result.prompt))
        spec = WaitSpec(
            "approval", result.then, timeout, prompt=prompt, approvers=list(approvers), data=data
        )
        info: dict[str, Any] = {"prompt": spec.prompt, "approvers": spec.approvers}
    else:
        spec = WaitSpec("event", result.then, timeout, name=result.name)
        info = {"event": result.name}
    waiting = ("run.waiting", {"kind": kind, "timeout_seconds": timeout, **redact(info)})
    return CommitPlan(
        RunStatus.WAITING,
        result.then,
        outcome="wait",
        wait=spec,
        events=[succeeded, waiting],
        **base,
    )


def _check_step(flow: Workflow, name: str, what: str) -> None:
    if name not in flow.steps:
        raise InvalidStepResult(
            f"{what} names step {name!r}, which workflow {flow.name!r} does not have "
            f"(its steps: {', '.join(flow.steps)})"
        )


def _plan_failure(claim: Claim, step_def: StepDef, attempt: int, exc: Exception) -> CommitPlan:
    error = redact_text(f"{type(exc).__name__}: {exc}")
    where = _traceback_of(exc)
    permanent = isinstance(exc, InvalidStepResult | InvalidInput) or not getattr(
        exc, "retryable", True
    )
    policy: RetryPolicy = step_def.retry
    failed = ("step.failed", {"attempt": claim.attempt, "error": error})
    if not permanent and policy.should_retry(attempt):
        delay = policy.delay(attempt)
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > delay:
            delay = min(float(retry_after), policy.max_delay)
        log.info(
            "run %s: step %s attempt %d failed (%s); retry in %.1fs",
            claim.run_id,
            claim.step,
            attempt,
            error,
            delay,
        )
        return CommitPlan(
            RunStatus.SLEEPING,
            claim.step,
            advance=False,
            step_status="failed",
            outcome="retry",
            step_error=error,
            step_traceback=where,
            wake_after=delay,
            events=[failed, ("step.retry_scheduled", {"attempt": attempt + 1, "delay": delay})],
        )
    log.warning("run %s: step %s failed for good: %s", claim.run_id, claim.step, error)
    return CommitPlan(
        RunStatus.FAILED,
        claim.step,
        advance=False,
        step_status="failed",
        outcome="fail",
        step_error=error,
        step_traceback=where,
        error=error,
        events=[failed, ("run.failed", {"error": error})],
    )


#: the most of a traceback kept with a step record
MAX_TRACEBACK_CHARS = 8000


def _traceback_of(exc: BaseException) -> str:
    """Where ``exc`` was raised, innermost frames kept: file, line, function and code line.

    Redacted like the error itself; frame locals are never included.
    """
    text = "".join(traceback.format_exception(exc, limit=-20))
    text = "\n".join(redact_text(line, MAX_TRACEBACK_CHARS) for line in text.splitlines())
    return text[-MAX_TRACEBACK_CHARS:]


def _fatal(claim: Claim, why: str) -> CommitPlan:
    return CommitPlan(
        RunStatus.FAILED,
        claim.step,
        advance=False,
        step_status="failed",
        outcome="fail",
        step_error=why,
        error=why,
        events=[
            ("step.failed", {"attempt": claim.attempt, "error": why}),
            ("run.failed", {"error": why}),
        ],
    )
