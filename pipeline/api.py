"""The public functions of the contract: start, read, decide, retry, cancel, audit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline import dispatch
from pipeline import patch as patching
from pipeline.audit import find_break
from pipeline.errors import InvalidInput, RunNotFound, WorkflowNotFound
from pipeline.ids import parse_id
from pipeline.jsonutil import Limit, require_object, to_json_value
from pipeline.principals import group_names
from pipeline.redact import storable_text
from pipeline.settings import get_settings
from pipeline.status import RunStatus
from pipeline.store import decisions, forks, get_db, runs
from pipeline.store.db_errors import actionable
from pipeline.store.records import RunRecord, WaitRecord
from pipeline.views import AuditVerification, HistoryEvent, RunView, StepView, WaitResult, WaitView
from pipeline.workflow import describe, find_workflow


def _run_id(run_id: Any) -> str:
    """Validate a run id before it reaches SQL: a UUID, or :class:`RunNotFound`."""
    found = parse_id(run_id)
    if found is None:
        raise RunNotFound(
            f"{str(run_id)[:64]!r} is not a run id (expected a UUID such as "
            "'0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10')"
        )
    return found


def _name(value: Any, what: str, example: str) -> str:
    """A name bound for a text column: 1-200 printable characters (no NUL, no surrogates)."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > 200
        or storable_text(value) != value
    ):
        raise InvalidInput(
            f"{what} must be a non-empty name of at most 200 characters, "
            f"without NUL or unpaired surrogates (e.g. {example!r})"
        )
    return value


def _actor(actor: Any) -> str:
    return _name(actor, "actor", "alice")


#: (database URL, workflow, version) this process found in the registry or recorded there
_registered: set[tuple[str, str, int]] = set()


def _workflow_spec(name: str) -> tuple[int, str]:
    """(version, start step) of a workflow: from this process, else as a worker recorded it."""
    if not isinstance(name, str):
        raise WorkflowNotFound(f"workflow name must be a string, not {type(name).__name__}")
    flow = find_workflow(name)
    db = get_db()
    if flow is not None:
        spec = describe(flow, get_settings().default_queue)
        # Record it, so operators and processes without the code can see it: once per
        # process (registry rows are never deleted), not on every start.
        if (db.url, name, flow.version) not in _registered:
            if runs.get_workflow(db, name, flow.version) is None:
                runs.upsert_workflow(db, name, flow.version, spec["start_step"], spec["steps"])
            _registered.add((db.url, name, flow.version))
        return flow.version, spec["start_step"]
    row = runs.get_workflow(db, name)
    if row is None:
        known = ", ".join(r.name for r in runs.list_workflows(db)) or "none yet"
        raise WorkflowNotFound(
            f"unknown workflow {name!r}; workflows registered by workers: {known}. Start a "
            "worker with RAVEL_WORKFLOWS naming the module that defines it"
        )
    return int(row.version), str(row.start_step)


@actionable
def start_run(
    workflow_name: str,
    input: dict[str, Any] | str,
    *,
    idempotency_key: str | None = None,
    actor: str = "api",
) -> str:
    """Start a run of a workflow and return its id (a str UUID).

    Args:
        workflow_name: a workflow defined in this process or registered by a worker.
        input: the run's JSON input (a dict, or JSON text of an object); it becomes the
            initial ``ctx.state``.
        idempotency_key: the same key returns the same run instead of starting another.
        actor: who starts it, for the audit log.

    Raises:
        WorkflowNotFound: no such workflow.
        InvalidInput: the input is not a JSON object or is over 64 KB.
    """
    run_id, wakeup = _record_start(workflow_name, input, idempotency_key, actor)
    if wakeup is not None:
        dispatch.publish(wakeup)
    return run_id


def _record_start(
    workflow_name: str, input: dict[str, Any] | str, idempotency_key: str | None, actor: str
) -> tuple[str, decisions.Wakeup | None]:
    """``start_run`` up to its publish: the run's id and the wake-up to publish (None when
    the idempotency key found an existing run). The start-rate benchmark times it alone."""
    data = require_object(input, what="the run input", limit=Limit.INPUT)
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 255
    ):
        raise InvalidInput("idempotency_key must be a string of 1 to 255 characters")
    version, start = _workflow_spec(workflow_name)
    run_id, created = runs.create_run(
        get_db(),
        workflow=workflow_name,
        version=version,
        step=start,
        input=data,
        idempotency_key=idempotency_key,
        actor=_actor(actor),
        redispatch_after=get_settings().redispatch_after,
    )
    return run_id, decisions.Wakeup(run_id, workflow_name, start, 0, version) if created else None


def _wait_view(wait: WaitRecord | None) -> WaitView | None:
    if wait is None:
        return None
    return WaitView(
        id=wait.id,
        kind=wait.kind,
        prompt=wait.prompt,
        approvers=list(wait.approvers or []),
        expires_at=wait.expires_at,
        name=wait.name,
        data=wait.data,
        then=wait.then_step,
        created_at=wait.created_at,
    )


def _view(run: RunRecord, wait: WaitRecord | None) -> RunView:
    return RunView(
        id=run.id,
        workflow=run.workflow,
        status=RunStatus(run.status),
        step=run.step,
        state=run.state,
        wait=_wait_view(wait),
        result=run.result,
        error=run.error,
        attempt=run.attempt - run.retry_base,
        tokens=int(run.tokens or 0),
        cost_usd=float(run.cost_usd or 0.0),
        created_at=run.created_at,
        updated_at=run.updated_at,
        workflow_version=run.workflow_version,
        seq=run.seq,
        input=run.input,
        forked_from=run.forked_from,
        forked_from_seq=run.forked_from_seq,
    )


@actionable
def get_run(run_id: str) -> RunView:
    """The run as stored now. Raises :class:`RunNotFound`."""
    rid = _run_id(run_id)
    found = runs.get_run(get_db(), rid)
    if found is None:
        raise RunNotFound(f"no run with id {rid}; list runs with `ravel runs list`")
    return _view(*found)


@actionable
def list_runs(
    status: RunStatus | str | None = None, workflow: str | None = None, limit: int = 50
) -> list[RunView]:
    """Runs, newest first, optionally filtered by status and workflow."""
    if status is not None:
        try:
            status = RunStatus(status).value
        except ValueError:
            choices = ", ".join(s.value for s in RunStatus)
            raise InvalidInput(f"unknown status {status!r}; use one of: {choices}") from None
    if not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be an integer from 1 to 10000")
    return [_view(r, w) for r, w in runs.list_runs(get_db(), status, workflow, limit)]


def _decide(
    run_id: str,
    decision: str,
    actor: str,
    data: Any,
    wait_id: str | None,
    groups: Iterable[str],
) -> WaitResult:
    rid = _run_id(run_id)
    value = to_json_value(data, what="the decision data", limit=Limit.INPUT)
    if wait_id is not None and not isinstance(wait_id, str):
        raise InvalidInput("wait_id must be a string")
    if isinstance(groups, str) or not all(isinstance(g, str) for g in groups):
        raise InvalidInput("groups must be a list of group names, e.g. ['finance']")
    result = decisions.decide(
        get_db(), rid, decision, _actor(actor), value, wait_id, group_names(groups)
    )
    if result.wakeup is not None:
        dispatch.publish(result.wakeup)
    if result.refusal is not None:
        raise result.refusal
    return WaitResult(
        "approval",
        result.decision,
        result.actor,
        value,
        result.at,
        result.wait_id,
        result.principal,
    )


@actionable
def approve(
    run_id: str,
    actor: str,
    data: dict[str, Any] | None = None,
    *,
    wait_id: str | None = None,
    groups: Iterable[str] = (),
) -> WaitResult:
    """Approve the run's open approval as the person ``actor``.

    The wait's ``approvers`` name who may decide: users (``alice``, ``user:alice``) and
    groups (``group:finance``). ``actor`` may decide when named, or when one of ``groups``
    (the groups the caller's identity source says the person belongs to: Django groups,
    API key configuration, a Slack user mapping; never a request body) is named. The
    history records the person and the principal they decided as.

    Exactly one decision wins; the same decision repeated is an idempotent success.

    Args:
        run_id: the run.
        actor: the person deciding.
        data: JSON data for the step after the wait (``ctx.wait_result.data``).
        wait_id: the wait the person saw. Always send it from a UI: a stale screen or a
            replayed request then never decides a newer wait of the same run. Without it,
            the run's open approval is decided, whichever it is.
        groups: the person's groups.

    Raises:
        NotAuthorized: ``actor`` may not decide this approval, whether or not it is still
            open (the refusal is audited as ``wait.refused``).
        WaitAlreadyDecided: it was rejected already (:class:`WaitExpired`: it expired).
        WaitNotFound: the run has no wait ``wait_id``.
        NotWaiting: the run has no open approval.
    """
    return _decide(run_id, "approved", actor, data, wait_id, groups)


@actionable
def reject(
    run_id: str,
    actor: str,
    reason: str | None = None,
    *,
    wait_id: str | None = None,
    groups: Iterable[str] = (),
) -> WaitResult:
    """Reject the run's open approval; the step after the wait sees ``decision == "rejected"``
    and the reason in ``data``. Arguments and errors as :func:`approve`."""
    return _decide(run_id, "rejected", actor, reason, wait_id, groups)


@actionable
def send_event(run_id: str, name: str, payload: Any = None, *, actor: str = "api") -> bool:
    """Send an event to a run; True if a waiting run was woken, False if it was kept for later.

    An event sent before the run parks on ``WaitForEvent(name)`` is kept and delivered then.
    So is one that arrives after the wait's deadline, whether or not the reaper has recorded
    the expiry yet: the wait expires (the run goes on with ``decision == "expired"``) and
    the event waits for the next ``WaitForEvent`` of its name.
    """
    rid = _run_id(run_id)
    _name(name, "the event name", "payment_received")
    value = to_json_value(payload, what="the event payload", limit=Limit.INPUT)
    delivery = decisions.send_event(get_db(), rid, name, value, _actor(actor))
    if delivery.wakeup is not None:
        dispatch.publish(delivery.wakeup)
    return delivery.delivered


@actionable
def retry_run(run_id: str, actor: str, state_patch: dict[str, Any] | None = None) -> RunView:
    """Resume a failed run at the step that failed; journaled effects are not repeated.

    Args:
        run_id: the failed run.
        actor: the operator, for the audit log.
        state_patch: keys to set in the run's state before it resumes.

    Raises:
        InvalidTransition: the run is not ``failed``.
    """
    rid = _run_id(run_id)
    patch = None
    if state_patch is not None:
        patch = require_object(state_patch, what="the state patch", limit=Limit.INPUT)
    dispatch.publish(decisions.retry(get_db(), rid, _actor(actor), patch))
    return get_run(rid)


@actionable
def fork_run(
    run_id: str, from_step: int, actor: str, state_patch: dict[str, Any] | str | None = None
) -> str:
    """Start a new run from the checkpoint before step seq ``from_step`` of any run.

    The fork runs the original's workflow version from that step on, with the state the
    step started from (optionally patched), how the wait before it ended, and the
    conversation up to there. The steps before it are not run again, so their journaled LLM
    calls and effects are not made or paid again; the fork's steps make fresh calls (under
    new idempotency keys) and its ``tokens`` and ``cost_usd`` count only those. Its history
    starts with ``run.forked`` (from which run and step, by whom, the patched keys); the
    original's gets ``run.forked_to``, unless one of its steps is running at that moment
    (see :attr:`RunView.forked_from` for the link both ways).

    Args:
        run_id: the run to fork, in any status.
        from_step: the step seq to start at (``ravel runs show`` lists them): 0 up to the
            step the run is at (for a succeeded run, its last step).
        actor: who forks, for both histories.
        state_patch: keys to set in the state first (a JSON object). A value may change but
            not its JSON type, and keys Ravel reserves (``_agent``) cannot be set.

    Returns:
        The new run's id.

    Raises:
        RunNotFound: no such run.
        InvalidInput: ``from_step`` is out of range, names the step after a wait that was
            never decided, or has no checkpoint; or the patch is not a JSON object, sets a
            reserved key or changes a value's type. Nothing is written.
    """
    rid = _run_id(run_id)
    if isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 0:
        raise InvalidInput(f"from_step must be a step seq (an integer >= 0), not {from_step!r}")
    patch = None
    if state_patch is not None:
        patch = require_object(state_patch, what="the state patch", limit=Limit.INPUT)
        patching.check_reserved(patch)

    def patched(state: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        new, keys = patching.apply(state, patch)
        value = to_json_value(new, what="the forked run's state", limit=Limit.STATE)
        return value, keys

    forked = forks.fork(
        get_db(), rid, from_step, _actor(actor), patched, get_settings().redispatch_after
    )
    dispatch.publish(forked.wakeup)
    return forked.run_id


@actionable
def cancel_run(run_id: str, actor: str, reason: str = "cancelled by operator") -> RunView:
    """Cancel a live run: a running step's commit is discarded, an open wait is closed.

    Cancelling a cancelled run again is a no-op. Raises :class:`InvalidTransition` for a run
    that already succeeded or failed.
    """
    rid = _run_id(run_id)
    decisions.cancel(get_db(), rid, _actor(actor), storable_text(str(reason))[:2000])
    return get_run(rid)


@actionable
def run_history(run_id: str) -> list[HistoryEvent]:
    """The run's audit events, oldest first."""
    rid = _run_id(run_id)
    rows = runs.history(get_db(), rid)
    if not rows and not runs.run_exists(get_db(), rid):
        raise RunNotFound(f"no run with id {rid}")
    return [HistoryEvent(r.kind, r.actor, r.at, r.step, r.data, r.idx) for r in rows]


@actionable
def run_steps(run_id: str) -> list[StepView]:
    """Every recorded step attempt of the run, in order."""
    rid = _run_id(run_id)
    rows = runs.step_records(get_db(), rid)
    if not rows and not runs.run_exists(get_db(), rid):
        raise RunNotFound(f"no run with id {rid}")
    return [
        StepView(
            r.seq,
            r.attempt,
            r.step,
            r.status,
            r.outcome,
            r.worker,
            r.error,
            r.started_at,
            r.finished_at,
            r.traceback,
        )
        for r in rows
    ]


@actionable
def verify_audit(run_id: str) -> AuditVerification:
    """Re-compute the run's audit hash chain and say whether (and where) it was altered."""
    rid = _run_id(run_id)
    # The run row first: it records the chain's length and head as of its last transition,
    # so events removed from the end (which leave a valid chain behind) are detected too.
    # Events appended after this read (a step committing meanwhile) are checked by the chain.
    found = runs.get_run(get_db(), rid)
    if found is None:
        raise RunNotFound(f"no run with id {rid}")
    recorded, head = int(found[0].audit_seq), str(found[0].audit_head)
    rows = runs.history(get_db(), rid)
    bad, problem, count = find_break(rows)
    if bad is None and count < recorded:
        bad = count + 1
        problem = f"events {count + 1} to {recorded} are missing (the run records {recorded})"
    elif bad is None and recorded and rows[recorded - 1].hash != head:
        bad = recorded
        problem = "the chain was rewritten: its hash does not match the head the run records"
    return AuditVerification(rid, bad is None, count, bad, problem)
