"""Invariants about runs and their records: nothing lost, one outcome per step, an intact and
truthful audit log, runs kept on their version, events kept until delivered."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from pipeline.testing.nemesis.history import History, RunData, epoch, group
from pipeline.testing.nemesis.verdict import Verdict

_FINAL = ("succeeded", "failed", "cancelled")
#: how late a due time may be at the end before the run counts as stuck
SLACK = timedelta(seconds=10)


def no_lost_run(h: History, now: datetime | None = None) -> Verdict:
    """Every planned run exists and is finished, or parked on a wait the driver left open; none
    is stuck pending, running or sleeping, nor parked past its wait's deadline."""
    v = Verdict("no_lost_run")
    now = now or datetime.now(UTC)
    started = {r.plan.tag for r in h.runs.values() if r.plan is not None}
    for tag in sorted(set(h.plans) - started):
        v.fail(None, f"run {tag} was planned but never started")
    for r in h.runs.values():
        v.runs += 1
        status = r.run.status
        if status in _FINAL:
            continue
        open_waits = [w for w in r.waits if w.decided_at is None]
        if status == "waiting" and open_waits:
            wait = open_waits[0]
            v.events += 1
            if wait.expires_at is not None and wait.expires_at + SLACK < now:
                v.fail(
                    r.id,
                    f"waiting on a {wait.kind} wait that expired at "
                    f"{wait.expires_at:%H:%M:%S} and was never expired",
                )
            elif not (wait.kind == "event" and r.plan is not None and r.plan.event == "open"):
                v.fail(
                    r.id,
                    f"left waiting on a {wait.kind} wait the driver does not leave "
                    f"open (step {r.run.step})",
                )
            continue
        detail = f"stuck {status} at step {r.run.step} (seq {r.run.seq})"
        if status == "sleeping" and r.run.wake_at is not None:
            detail += f", due at {r.run.wake_at:%H:%M:%S}"
        v.fail(r.id, detail)
    return v


def one_outcome_per_step(h: History) -> Verdict:
    """Each step of a run committed exactly once (one succeeded attempt per seq before the run's
    current seq, none after), and no two committed attempts of a run overlapped in time."""
    v = Verdict("one_outcome_per_step")
    for r in h.runs.values():
        v.runs += 1
        v.events += len(r.steps)
        succeeded = Counter(s.seq for s in r.steps if s.status == "succeeded")
        for seq in range(r.run.seq):
            if succeeded[seq] != 1:
                v.fail(r.id, f"seq {seq} has {succeeded[seq]} succeeded attempts, not 1")
        for seq, count in succeeded.items():
            if seq >= r.run.seq:
                v.fail(r.id, f"seq {seq} succeeded {count}x but the run is at seq {r.run.seq}")
        committed = sorted(
            (s for s in r.steps if s.status != "lost" and s.started_at), key=lambda s: s.started_at
        )
        for before, after in pairwise(committed):
            if before.finished_at > after.started_at:
                v.fail(
                    r.id,
                    f"attempts {before.seq}/{before.attempt} and "
                    f"{after.seq}/{after.attempt} both committed and overlapped",
                )
    return v


def audit_chain_verifies(h: History, verify: Callable[[str], Any] | None = None) -> Verdict:
    """Every run's audit hash chain verifies (``pipeline.verify_audit``)."""
    if verify is None:
        from pipeline import verify_audit

        verify = verify_audit
    v = Verdict("audit_chain_verifies")
    for r in h.runs.values():
        v.runs += 1
        result = verify(r.id)
        v.events += int(result.events)
        if not result.ok:
            v.fail(r.id, f"audit chain broken at event {result.first_bad_idx}: {result.problem}")
    return v


def events_match_steps(h: History) -> Verdict:
    """A run's audit events tell the same story as its step records, waits and status."""
    v = Verdict("events_match_steps")
    for r in h.runs.values():
        v.runs += 1
        v.events += len(r.audit)
        kinds = Counter(e.kind for e in r.audit)
        records = Counter(s.status for s in r.steps)
        pairs = [
            ("step.started", sum(records.values()) - records["lost"]),
            ("step.succeeded", records["succeeded"]),
            ("step.lost", records["lost"]),
            ("run.waiting", len(r.waits)),
        ]
        for kind, expected in pairs:
            if kinds[kind] != expected:
                v.fail(r.id, f"{kinds[kind]} {kind} events but {expected} matching records")
        failed_ends = kinds["step.failed"] + kinds["run.failed"]
        if not kinds["step.failed"] <= records["failed"] <= failed_ends:
            v.fail(
                r.id,
                f"{records['failed']} failed attempts recorded, "
                f"{kinds['step.failed']} step.failed events",
            )
        _final_event(v, r)
        _wait_events(v, r)
    return v


def _final_event(v: Verdict, r: RunData) -> None:
    if r.run.status not in _FINAL:
        return
    ends = [
        e.kind
        for e in r.audit
        if e.kind in ("run.succeeded", "run.failed", "run.cancelled", "run.retried")
    ]
    last = ends[-1] if ends else None
    expected = {
        "succeeded": "run.succeeded",
        "failed": "run.failed",
        "cancelled": "run.cancelled",
    }.get(r.run.status)
    if last != expected:
        v.fail(r.id, f"the run is {r.run.status} but its last run event is {last}")


def _wait_events(v: Verdict, r: RunData) -> None:
    decided = {
        e.data.get("wait_id"): e.kind
        for e in r.audit
        if e.kind in ("wait.approved", "wait.rejected", "wait.expired", "event.received")
    }
    names = {
        "approved": "wait.approved",
        "rejected": "wait.rejected",
        "expired": "wait.expired",
        "received": "event.received",
    }
    for wait in r.waits:
        want = names.get(wait.decision or "")
        if want is not None and decided.get(wait.id) != want:
            v.fail(
                r.id, f"wait {wait.id} was {wait.decision} but its event is {decided.get(wait.id)}"
            )


def runs_stay_on_their_version(h: History) -> Verdict:
    """Every committed step of a workflow run ran the code of the version the run started on."""
    v = Verdict("runs_stay_on_their_version")
    for r in h.runs.values():
        if r.plan is None or r.plan.kind != "flow":
            continue
        v.runs += 1
        ran = list(r.run.state.get("ran", []))
        if r.run.status == "succeeded" and isinstance(r.run.result, dict):
            ran = list(r.run.result.get("ran", ran))
        v.events += len(ran)
        if any(version != r.run.workflow_version for version in ran):
            v.fail(r.id, f"a v{r.run.workflow_version} run ran steps of versions {ran}")
    return v


def conversation_without_duplicates(h: History) -> Verdict:
    """No tool call answered twice, no LLM reply appended twice, nothing appended that the
    journal does not hold."""
    v = Verdict("conversation_without_duplicates")
    for r in h.runs.values():
        if not r.messages:
            continue
        v.runs += 1
        v.events += len(r.messages)
        answered = Counter(m.get("tool_call_id") for m in r.messages if m.get("role") == "tool")
        for call_id, count in answered.items():
            if count > 1:
                v.fail(r.id, f"tool call {call_id} answered {count} times")
        replies = sum(1 for m in r.messages if m.get("role") == "assistant")
        journaled = sum(1 for e in r.effects if e.kind == "llm" and e.status == "done")
        if replies > journaled:
            v.fail(r.id, f"{replies} model replies in the conversation, {journaled} journaled")
    return v


def events_are_kept(h: History) -> Verdict:
    """An event the driver sent (before the run parked, or while it waited) was delivered to
    the run's event wait, with its payload, unless the run was cancelled first."""
    v = Verdict("events_are_kept")
    for r in h.runs.values():
        if r.plan is None or r.plan.kind != "flow":
            continue
        sent = [a for a in h.actions_of(r, "send_event") if a.get("ok")]
        if not sent:
            continue
        v.runs += 1
        v.events += len(sent)
        waits = group(r.waits, "kind").get("event", [])
        received = [w for w in waits if w.decision == "received"]
        if r.run.status == "cancelled" and not received:
            continue
        if len(received) != 1:
            v.fail(
                r.id,
                f"event sent at {sent[0]['t']:.3f}; event waits decided "
                f"{[w.decision for w in waits]}",
            )
            continue
        payload = r.run.result.get("payload") if isinstance(r.run.result, dict) else None
        if r.run.status == "succeeded" and (payload or {}).get("ref") != r.plan.tag:
            v.fail(r.id, f"the run finished with payload {payload!r}, not the event sent")
        if received[0].decided_at is not None and epoch(received[0].decided_at) < sent[0]["t0"]:
            v.fail(r.id, "the event wait was decided before the event was sent")
    return v
