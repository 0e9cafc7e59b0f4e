"""The checker: every invariant, each a named function of the whole history, and the story of a
run for the report when one breaks.

Invariants live in :mod:`.checks_runs` (runs and their records) and :mod:`.checks_effects`
(effects, approvals, secrets); :data:`INVARIANTS` lists them in the order they are reported.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any

from pipeline.testing.nemesis.checks_effects import (
    approvals_are_honoured,
    canaries_nowhere,
    exactly_one_po_per_approved_run,
    llm_calls_within_faults,
    no_call_after_cancel,
    remote_calls_have_intents,
)
from pipeline.testing.nemesis.checks_runs import (
    audit_chain_verifies,
    conversation_without_duplicates,
    events_are_kept,
    events_match_steps,
    no_lost_run,
    one_outcome_per_step,
    runs_stay_on_their_version,
)
from pipeline.testing.nemesis.history import History, RunData, epoch
from pipeline.testing.nemesis.verdict import Verdict, Violation

INVARIANTS: list[Callable[[History], Verdict]] = [
    no_lost_run,
    one_outcome_per_step,
    events_match_steps,
    audit_chain_verifies,
    conversation_without_duplicates,
    runs_stay_on_their_version,
    events_are_kept,
    exactly_one_po_per_approved_run,
    no_call_after_cancel,
    remote_calls_have_intents,
    llm_calls_within_faults,
    approvals_are_honoured,
    canaries_nowhere,
]


def check(history: History) -> list[Verdict]:
    """Run every invariant; a check that crashes counts as violated (with its traceback)."""
    verdicts = []
    for invariant in INVARIANTS:
        try:
            verdicts.append(invariant(history))
        except Exception:
            verdict = Verdict(invariant.__name__)
            verdict.violations.append(
                Violation(None, "the check crashed:\n" + traceback.format_exc(limit=-4))
            )
            verdicts.append(verdict)
    return verdicts


def violated_runs(verdicts: list[Verdict]) -> list[str]:
    """The run ids named by violations, in order of first mention."""
    seen: dict[str, None] = {}
    for verdict in verdicts:
        for violation in verdict.violations:
            if violation.run_id is not None:
                seen.setdefault(violation.run_id, None)
    return list(seen)


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str, ensure_ascii=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def story(h: History, run_id: str) -> str:
    """A run's whole history as text: plan, status, audit events, attempts, journal, the
    driver's actions, the world's posts, the LLM server's counters."""
    r: RunData | None = h.runs.get(run_id)
    if r is None:
        return f"run {run_id}: not in the database"
    base = epoch(r.run.created_at)
    lines = [
        f"run {run_id} ({r.run.workflow} v{r.run.workflow_version}, tag "
        f"{r.plan.tag if r.plan else '?'}): {r.run.status} at step {r.run.step} "
        f"seq {r.run.seq}" + (f"; error: {r.run.error[:300]}" if r.run.error else ""),
        f"  plan: {r.plan}",
    ]
    timeline: list[tuple[float, str]] = []
    for e in r.audit:
        timeline.append(
            (epoch(e.at), f"audit {e.kind} by {e.actor} step={e.step} {_short(e.data)}")
        )
    for s in r.steps:
        at = epoch(s.started_at) if s.started_at else epoch(s.finished_at)
        timeline.append(
            (
                at,
                f"attempt seq={s.seq} #{s.attempt} {s.step} {s.status} "
                f"outcome={s.outcome} worker={s.worker} "
                f"{(s.error or '')[:120]}",
            )
        )
    for e in r.effects:
        timeline.append(
            (
                epoch(e.started_at),
                f"journal {e.kind} {e.name} seq={e.seq} "
                f"{e.status} calls={e.calls} key={e.idempotency_key}",
            )
        )
    for a in h.actions_of(r):
        rest = {k: v for k, v in a.items() if k not in ("t", "kind", "run", "tag")}
        timeline.append((float(a["t"]), f"driver {a['kind']} {_short(rest)}"))
    for p in h.posts_of(r):
        timeline.append(
            (
                float(p["t0"]),
                f"world POST {p['path']} key={p['key']} "
                f"applied={p['applied']} status={p['status']}",
            )
        )
    last = max((at for at, _ in timeline), default=base)
    for fault in h.faults:
        if fault["kind"] in ("start", "worker_died", "beat_died") and base <= fault["t"] <= last:
            what = fault.get("fault") or fault["kind"]
            timeline.append(
                (
                    fault["t"],
                    f"FAULT {what} target={fault.get('target')} "
                    f"hold={fault.get('hold')} {fault.get('detail') or ''}",
                )
            )
    for at, text in sorted(timeline, key=lambda item: item[0]):
        lines.append(f"  {at - base:+9.3f}s {text}")
    stats = h.llm_stats.get(run_id)
    if stats:
        lines.append(f"  LLM server, by turn: {_short(stats.get('by_turn'), 400)}")
    return "\n".join(lines)
