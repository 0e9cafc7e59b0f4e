"""The driver: starts the runs and plays the people around them, logging every action.

It starts each run at its planned time, approves, rejects or lets approvals expire (after an
intruder's refused try, for some), resolves unknown tool outcomes as the operator, sends
events (some before the run parks), cancels runs mid-step and operator-retries failed runs
with a state patch. It goes through the public API only, as an application would, and keeps
going while the database or broker is down (a failed call is logged and tried again).

Every call is logged to the action log with ``t0`` (called) and ``t`` (returned): the checker
compares vendor posts against the time ``cancel_run`` returned.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline import (
    RunView,
    approve,
    cancel_run,
    list_runs,
    reject,
    retry_run,
    send_event,
    start_run,
)
from pipeline.errors import PipelineError, StoreUnavailable
from pipeline.testing.nemesis.jsonlog import JsonLog
from pipeline.testing.nemesis.plan import (
    APPROVER,
    APPROVER_GROUPS,
    INTRUDER,
    OPERATOR,
    RunPlan,
)
from pipeline.testing.nemesis.script import user_message

#: operator retries of one failed run at most
MAX_RETRIES = 3
_FINAL = ("succeeded", "failed", "cancelled")
_CANCEL_STAGES = {"act": ("running", "act"), "reason": ("running", "reason")}


@dataclass
class Track:
    """What the driver has done to one run so far."""

    plan: RunPlan
    run_id: str | None = None
    seen: dict[str, float] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)
    intruded: bool = False
    event_sent: bool = False
    cancelled: bool = False
    retries: int = 0
    last_status: str = "pending"


def run_input(plan: RunPlan) -> dict[str, Any]:
    """The run's input, from its plan."""
    if plan.kind == "agent":
        return {"message": user_message(plan), "ref": plan.tag}
    return {
        "ref": plan.tag,
        "nap": round(plan.nap, 2),
        "event_timeout": plan.event_timeout,
        "fail_once": plan.fail_once,
    }


def event_payload(plan: RunPlan) -> dict[str, Any]:
    """The ``paid`` event's payload (with NUL for the runs whose flavors ask for it)."""
    payload: dict[str, Any] = {"ref": plan.tag, "amount": 10 + plan.index}
    if "nul" in plan.flavors:
        payload["memo"] = "paid\x00in full"
    return payload


class Driver:
    """Plays the people around the runs; see the module docstring."""

    def __init__(
        self, plans: list[RunPlan], log: JsonLog, stop: threading.Event, poll: float = 0.25
    ) -> None:
        """Drive ``plans``, logging to ``log``, until ``stop`` is set."""
        self.tracks = {p.tag: Track(p) for p in plans}
        self.by_run: dict[str, Track] = {}
        self.log = log
        self.stop = stop
        self.poll = poll
        self.started_at = 0.0
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the starter and watcher threads."""
        self.started_at = time.time()
        for target, name in ((self._start_all, "starter"), (self._watch, "watcher")):
            thread = threading.Thread(target=target, name=f"nemesis-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float = 30) -> None:
        """Wait for the threads to end (after ``stop`` is set)."""
        for thread in self._threads:
            thread.join(timeout)

    def settled(self) -> bool:
        """Whether every run was started and is final or parked where the plan leaves it."""
        return all(t.run_id is not None and self._at_rest(t) for t in self.tracks.values())

    def _at_rest(self, track: Track) -> bool:
        if track.last_status in ("succeeded", "cancelled"):
            return True
        if track.last_status == "failed":
            return track.plan.expected_failure() or track.retries >= MAX_RETRIES
        return track.last_status == "waiting-open"

    # -- calls, logged -----------------------------------------------------------------

    def _call(self, action: str, track: Track, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the API; log the outcome. None (logged) if it raised."""
        t0 = time.time()
        try:
            value = fn(*args, **kwargs)
        except PipelineError as exc:
            kind = "error" if isinstance(exc, StoreUnavailable) else "refused"
            self.log.write(
                action,
                run=track.run_id,
                tag=track.plan.tag,
                t0=t0,
                ok=False,
                outcome=kind,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
            return None
        except Exception as exc:  # the database or broker is down: try again later
            self.log.write(
                action,
                run=track.run_id,
                tag=track.plan.tag,
                t0=t0,
                ok=False,
                outcome="error",
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
            return None
        self.log.write(
            action, run=track.run_id, tag=track.plan.tag, t0=t0, ok=True, **_describe(value)
        )
        return value if value is not None else True

    # -- starting ----------------------------------------------------------------------

    def _start_all(self) -> None:
        for track in sorted(self.tracks.values(), key=lambda t: t.plan.start_at):
            delay = self.started_at + track.plan.start_at - time.time()
            if delay > 0 and self.stop.wait(delay):
                return
            while track.run_id is None and not self.stop.is_set():
                plan = track.plan
                run_id = self._call(
                    "start",
                    track,
                    start_run,
                    plan.workflow,
                    run_input(plan),
                    idempotency_key=plan.tag,
                )
                if isinstance(run_id, str):
                    track.run_id = run_id
                    self.by_run[run_id] = track
                else:
                    self.stop.wait(0.5)
            if track.plan.kind == "flow" and track.plan.event == "early":
                self._send_event(track)

    def _send_event(self, track: Track) -> None:
        sent = self._call(
            "send_event",
            track,
            send_event,
            track.run_id,
            "paid",
            event_payload(track.plan),
            actor="payments",
        )
        track.event_sent = sent is not None

    # -- watching ----------------------------------------------------------------------

    def _watch(self) -> None:
        while not self.stop.wait(self.poll):
            try:
                runs = list_runs(limit=10_000)
            except Exception:  # the database is down: the next poll tries again
                continue
            for run in runs:
                track = self.by_run.get(run.id)
                if track is not None:
                    self._handle(run, track)

    def _handle(self, run: RunView, track: Track) -> None:
        status = str(run.status.value)
        track.last_status = status
        if status in ("succeeded", "cancelled"):
            return
        if self._maybe_cancel(run, track):
            return
        if status == "failed":
            self._maybe_retry(track)
        elif status == "waiting" and run.wait is not None:
            if run.wait.kind == "approval":
                self._approval(run, track)
            else:
                self._event_wait(run, track)

    def _maybe_cancel(self, run: RunView, track: Track) -> bool:
        stage = track.plan.cancel
        if stage is None or track.cancelled:
            return False
        status = str(run.status.value)
        wanted = _CANCEL_STAGES.get(stage, (stage, None))
        if status != wanted[0] or (wanted[1] is not None and run.step != wanted[1]):
            return False
        view = self._call(
            "cancel", track, cancel_run, run.id, OPERATOR, f"nemesis cancels at {stage}"
        )
        track.cancelled = view is not None
        return track.cancelled

    def _maybe_retry(self, track: Track) -> None:
        if track.plan.expected_failure() or track.retries >= MAX_RETRIES:
            return
        track.retries += 1
        patch = {"patched": True, "operator_retry": track.retries}
        if self._call("retry", track, retry_run, track.run_id, OPERATOR, patch) is None:
            track.retries -= 1

    def _approval(self, run: RunView, track: Track) -> None:
        wait = run.wait
        assert wait is not None
        seen = track.seen.setdefault(wait.id, time.time())
        if wait.id in track.decided:
            return
        data = wait.data or {}
        if data.get("unknown_outcome") or "budget_exceeded" in data:
            decision = {"resolution": "retry"} if data.get("unknown_outcome") else None
            if (
                self._call("resolve", track, approve, run.id, OPERATOR, decision, wait_id=wait.id)
                is not None
            ):
                track.decided.add(wait.id)
            return
        plan = track.plan
        if plan.intruder and not track.intruded:
            self._call("intrude", track, approve, run.id, INTRUDER, wait_id=wait.id)
            track.intruded = True
        if plan.decision == "expire" or time.time() - seen < plan.decide_after:
            return
        if plan.decision == "approve":
            done = self._call(
                "approve",
                track,
                approve,
                run.id,
                APPROVER,
                {"note": plan.tag},
                wait_id=wait.id,
                groups=APPROVER_GROUPS,
            )
        else:
            done = self._call(
                "reject",
                track,
                reject,
                run.id,
                APPROVER,
                "over budget",
                wait_id=wait.id,
                groups=APPROVER_GROUPS,
            )
        if done is not None:
            track.decided.add(wait.id)

    def _event_wait(self, run: RunView, track: Track) -> None:
        assert run.wait is not None
        plan = track.plan
        if plan.event == "open":
            track.last_status = "waiting-open"
            return
        seen = track.seen.setdefault(run.wait.id, time.time())
        if plan.event == "late" and not track.event_sent and time.time() - seen > 0.3:
            self._send_event(track)


def _describe(value: Any) -> dict[str, Any]:
    """What to log about an API call's return value."""
    if isinstance(value, RunView):
        return {"status": str(value.status.value), "step": value.step}
    if isinstance(value, bool | str):
        return {"value": value}
    decision = getattr(value, "decision", None)
    return {"decision": decision} if decision is not None else {}
