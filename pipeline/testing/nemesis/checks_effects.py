"""Invariants about effects: POs applied once and only when approved, nothing started after a
cancel returned, no remote call without its journal intent, LLM calls explained by faults,
approvals honoured, canary secrets kept out of storage and logs."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pipeline.testing.nemesis.history import Disruption, History, RunData, epoch
from pipeline.testing.nemesis.plan import APPROVER, INTRUDER, OPERATOR, canary
from pipeline.testing.nemesis.verdict import Verdict

SUBMIT_TOOLS = ("submit_po", "submit_express_po")


def _po_waits(r: RunData) -> list[Any]:
    return [
        w for w in r.waits if w.kind == "approval" and (w.data or {}).get("tool") in SUBMIT_TOOLS
    ]


def exactly_one_po_per_approved_run(h: History) -> Verdict:
    """An approved PO is applied exactly once (once the run succeeded; at most once otherwise),
    under the key the journal holds; a PO nobody approved is never even posted."""
    v = Verdict("exactly_one_po_per_approved_run")
    for r in h.runs.values():
        if r.plan is None or r.plan.kind != "agent":
            continue
        v.runs += 1
        posts = h.posts_of(r, "/po")
        v.events += len(posts)
        approved = [w for w in _po_waits(r) if w.decision == "approved"]
        if not approved:
            if posts:
                v.fail(r.id, f"{len(posts)} PO posts though no approval was granted")
            continue
        applied = [p for p in posts if p["applied"]]
        if len(applied) > 1 or (r.run.status == "succeeded" and len(applied) != 1):
            v.fail(r.id, f"{len(applied)} POs applied for one approved run ({r.run.status})")
        keys = {
            e.idempotency_key
            for w in approved
            if (e := r.effect(f"tool:{w.data['tool_call_id']}")) is not None
        }
        for post in applied:
            if post["key"] not in keys:
                v.fail(r.id, f"PO applied under key {post['key']}, not the journal's {keys}")
    return v


def no_call_after_cancel(h: History) -> Verdict:
    """Once ``cancel_run`` returned, the run started no journaled call (no intent written
    after), and the world saw no call that had not started before (the call in flight at that
    moment is the documented exception)."""
    v = Verdict("no_call_after_cancel")
    for r in h.runs.values():
        cancels = [a for a in h.actions_of(r, "cancel") if a.get("ok")]
        if r.run.status != "cancelled" or not cancels:
            continue
        v.runs += 1
        returned = float(cancels[0]["t"])
        v.events += len(r.effects)
        intents = {e.idempotency_key: e for e in r.effects}
        for e in r.effects:
            if epoch(e.started_at) >= returned:
                v.fail(
                    r.id,
                    f"{e.kind} {e.name} started {epoch(e.started_at) - returned:.3f}s "
                    "after cancel_run returned",
                )
        for request in h.requests_of(r):
            v.events += 1
            if request["t0"] < returned:
                continue
            intent = intents.get(request["key"])
            if intent is None or epoch(intent.started_at) >= returned:
                v.fail(
                    r.id,
                    f"{request['kind'].upper()} {request['path']} "
                    f"{request['t0'] - returned:.3f}s after cancel_run returned, with "
                    "no intent written before",
                )
    return v


def remote_calls_have_intents(h: History) -> Verdict:
    """Every call the world saw was preceded by its own journal intent: no more requests under
    a call's keys than journaled starts of that call (an effect called twice breaks this).

    A call is a run's journal name over all seqs: an unknown outcome an operator resolves with
    ``retry`` is journaled again at the next seq, and called with the first key.
    """
    v = Verdict("remote_calls_have_intents")
    call_of = {e.idempotency_key: (r.id, e.name) for r in h.runs.values() for e in r.effects}
    starts: Counter[tuple[str, str]] = Counter()
    for r in h.runs.values():
        for e in r.effects:
            starts[(r.id, e.name)] += e.calls
    by_tag = h.by_tag()
    requests: Counter[tuple[str, str]] = Counter()
    v.runs = len(h.runs)
    for request in h.requests:
        v.events += 1
        call = call_of.get(request.get("key") or "")
        if call is None:
            run = by_tag.get(request["ref"])
            v.fail(
                run.id if run else None,
                f"{request['kind'].upper()} {request['path']} "
                f"under key {request.get('key')}, which no journal "
                "intent holds",
            )
        else:
            requests[call] += 1
    for (run_id, name), count in requests.items():
        if count > starts[(run_id, name)]:
            v.fail(
                run_id, f"{count} requests for {name} but {starts[(run_id, name)]} journaled starts"
            )
    return v


def _runnable_since(r: RunData, seq: int) -> float:
    """When the run could first start seq ``seq``: the previous step's commit."""
    before = [epoch(s.finished_at) for s in r.steps if s.seq < seq]
    return max(before) if before else epoch(r.run.created_at)


def _overlapping(disruptions: list[Disruption], start: float, end: float) -> int:
    return sum(1 for d in disruptions if d.start <= end + 1.0 and d.end >= start - 1.0)


def llm_calls_within_faults(h: History) -> Verdict:
    """Per LLM call of a run: the server answered no more requests than the journal started,
    and the journal started it once, plus at most one more per fault that struck while it was
    in flight (a scripted error or hang of that turn, or a fault from the fault log)."""
    v = Verdict("llm_calls_within_faults")
    for r in h.runs.values():
        if r.plan is None or r.plan.kind != "agent":
            continue
        v.runs += 1
        by_turn = h.llm_stats.get(r.id, {}).get("by_turn", {})
        journal = {
            int(e.name.split(":")[1]): e
            for e in r.effects
            if e.kind == "llm" and e.name.split(":")[1].isdigit()
        }
        scripted = h.scripted_faults(r)
        for turn_text, served in by_turn.items():
            turn = int(turn_text)
            answered = served["calls"] + served["failed_calls"]
            v.events += answered
            e = journal.get(turn)
            if e is None:
                v.fail(r.id, f"turn {turn}: {answered} LLM requests, no journal intent")
                continue
            if answered > e.calls:
                v.fail(
                    r.id,
                    f"turn {turn}: the server answered {answered} requests, the "
                    f"journal started the call {e.calls} times",
                )
            end = epoch(e.finished_at) if e.finished_at else epoch(r.run.updated_at)
            faults = _overlapping(h.disruptions, _runnable_since(r, e.seq), end)
            explained = served["failed_calls"] + (scripted.get(turn) == "hang") + faults
            if e.calls - 1 > explained:
                v.fail(
                    r.id,
                    f"turn {turn}: started {e.calls} times; explained: "
                    f"{served['failed_calls']} errors, {faults} faults",
                )
    return v


def approvals_are_honoured(h: History) -> Verdict:
    """A PO is submitted only after an approval of that very call; a call whose last approval
    was rejected or expired is not made, the model is told so, and an expiry does what the
    tool's ``on_timeout`` says; only the named approver (or the operator) decides anything.

    An operator who retries a run that failed on an expiry gets the approval asked again: a
    later approval of the same call then allows it.
    """
    v = Verdict("approvals_are_honoured")
    for r in h.runs.values():
        if r.plan is None or r.plan.kind != "agent":
            continue
        v.runs += 1
        answers = {
            m.get("tool_call_id"): str(m.get("content"))
            for m in r.messages
            if m.get("role") == "tool"
        }
        for w in r.waits:
            v.events += 1
            if w.decision in ("approved", "rejected") and w.actor not in (APPROVER, OPERATOR):
                v.fail(r.id, f"wait {w.id} {w.decision} by {w.actor}")
        by_call: dict[str, list[Any]] = {}
        for w in sorted(_po_waits(r), key=lambda w: w.created_at):
            by_call.setdefault(w.data["tool_call_id"], []).append(w)
        for call_id, waits in by_call.items():
            _one_call(v, r, call_id, waits, answers.get(call_id))
        for attempt in h.actions_of(r, "intrude"):
            v.events += 1
            if attempt.get("ok") or "NotAuthorized" not in str(attempt.get("error")):
                v.fail(r.id, f"{INTRUDER}'s approval was not refused: {attempt}")
    return v


def _one_call(v: Verdict, r: RunData, call_id: str, waits: list[Any], answer: str | None) -> None:
    """Check one proposed PO call against the approvals asked for it, oldest first."""
    tool = waits[-1].data["tool"]
    call = r.effect(f"tool:{call_id}")
    if call is not None and not any(
        w.decision == "approved" and w.decided_at <= call.started_at for w in waits
    ):
        v.fail(r.id, f"{tool} was called with no approval of the call before it")
    last = waits[-1]
    if last.decision not in ("rejected", "expired"):
        return
    if call is not None and call.started_at >= last.decided_at:
        v.fail(r.id, f"{tool} was called after its approval was {last.decision}")
    if last.decision == "rejected" and answer is not None and not answer.startswith("REJECTED"):
        v.fail(r.id, f"the model was not told of the rejection: {answer[:80]}")
    if last.decision == "expired" and tool == "submit_express_po":
        if r.run.status not in ("failed", "cancelled"):
            v.fail(
                r.id, f"an express approval expired (on_timeout=fail) but the run is {r.run.status}"
            )
    elif last.decision == "expired" and answer is not None and "expired" not in answer:
        v.fail(r.id, f"the model was not told of the expiry: {answer[:80]}")


def canaries_nowhere(h: History) -> Verdict:
    """Canary secrets planted in tool inputs and outputs appear nowhere: not in any ravel_
    table, not in the broker, not in any process log."""
    v = Verdict("canaries_nowhere")
    served = sorted({g["ref"] for g in h.gets if "canary" in g.get("flavors", ())})
    secrets = {
        canary(h.salt, tag, where): (tag, where)
        for tag in served
        for where in ("key", "out", "arg")
    }
    v.runs = len(served)
    if not secrets:
        return v
    # One pass over each source for all the canaries: the database text is tens of MB.
    pattern = re.compile("|".join(map(re.escape, secrets)))
    sources = [("the database", h.database_text), ("the broker", h.broker_text)]
    sources += [(f"log {p.name}", p.read_text(errors="replace")) for p in h.log_files]
    by_tag = h.by_tag()
    for name, text in sources:
        v.events += len(secrets)
        for found in sorted(set(pattern.findall(text))):
            tag, where = secrets[found]
            run = by_tag.get(tag)
            v.fail(run.id if run else None, f"canary ({where}) of {tag} found in {name}")
    return v
