"""The report: what ran, the faults injected (how many of each kind), the invariants checked (runs
and events examined) and, on a violation, the seed, the run ids and each run's history."""

from __future__ import annotations

from collections import Counter

from pipeline.testing.nemesis.checker import story, violated_runs
from pipeline.testing.nemesis.harness import Outcome
from pipeline.testing.nemesis.history import History
from pipeline.testing.nemesis.verdict import Verdict


def fault_counts(outcome: Outcome, history: History) -> Counter[str]:
    """Faults injected, by kind: the schedule's (as applied), the deaths they caused, and the
    scripted LLM faults of turns the server was asked for."""
    counts: Counter[str] = Counter(outcome.injected)
    for entry in history.faults:
        if entry["kind"] in ("worker_died", "beat_died"):
            counts[entry["kind"]] += 1
    counts["child_killed (pool process)"] = sum(
        1 for d in history.disruptions if d.kind == "child_killed"
    )
    for get in history.gets:  # what the world served in tool results
        for flavor in get.get("flavors", ()):
            counts[f"tool_result_{flavor}"] += 1
    for run in history.runs.values():
        served = history.llm_stats.get(run.id, {}).get("by_turn", {})
        for turn, kind in history.scripted_faults(run).items():
            if str(turn) in served:
                counts[f"llm_{kind}"] += 1
    return Counter({k: v for k, v in counts.items() if v})


def _table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    cells = [header, *[tuple(str(c) for c in row) for row in rows]]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render(outcome: Outcome, history: History, verdicts: list[Verdict]) -> str:
    """The whole report as text."""
    o = outcome.options
    statuses = Counter(r.run.status for r in history.runs.values())
    kinds = Counter(r.plan.kind for r in history.runs.values() if r.plan)
    lines = [
        f"nemesis seed {o.seed}: {len(history.runs)} runs ({kinds['agent']} agent, "
        f"{kinds['flow']} workflow) on {o.workers} workers x {o.concurrency} + beat, broker "
        f"{o.broker}, {o.duration:.0f}s of faults, {outcome.seconds:.0f}s in all (checked in "
        f"{outcome.check_seconds:.0f}s)" + (f", mutant {o.mutant}" if o.mutant else ""),
        "final statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
        f"logs: {outcome.folder}",
        "",
        _table(("fault", "count"), sorted(fault_counts(outcome, history).items())),
        "",
        _table(
            ("invariant", "runs", "events", "result"),
            [
                (v.name, v.runs, v.events, "ok" if v.ok else f"VIOLATED x{len(v.violations)}")
                for v in verdicts
            ],
        ),
    ]
    if outcome.injector_errors:
        lines += [
            "",
            "faults that could not be injected:",
            *(f"  {e}" for e in outcome.injector_errors),
        ]
    if not outcome.settled:
        lines += ["", "the runs did not settle in time (see no_lost_run)"]
    broken = [v for v in verdicts if not v.ok]
    if broken:
        runs = violated_runs(verdicts)
        lines += [
            "",
            f"VIOLATIONS (seed {o.seed}; replay: python -m pipeline.testing.nemesis "
            f"--seed {o.seed} --runs {o.runs} --duration {o.duration:g} --broker "
            f"{o.broker}" + (f" --mutant {o.mutant}" if o.mutant else "") + ")",
        ]
        for v in broken:
            for violation in v.violations[:50]:
                lines.append(f"  {v.name}: run {violation.run_id or '-'}: {violation.detail}")
            if len(v.violations) > 50:
                lines.append(f"  {v.name}: ... {len(v.violations) - 50} more")
        lines += ["", f"run ids: {' '.join(runs)}", ""]
        lines += [story(history, run_id) + "\n" for run_id in runs[:20]]
    return "\n".join(lines)
