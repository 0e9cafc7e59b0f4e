"""The demo's output: live progress lines, the run's timeline, and the proof."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline import run_history, run_steps
from pipeline.store import get_db, journal
from pipeline.views import HistoryEvent

# Wide enough for the tables when the output is a log file or a CI console, not a terminal.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

_LABELS = {
    "run.started": "run started",
    "run.waiting": "parked: waiting for {approvers} (no worker, no message held)",
    "wait.approved": "approved by {actor}",
    "wait.rejected": "rejected by {actor}",
    "step.lost": "attempt {attempt} of {step} lost: its worker died before committing",
    "step.failed": "{step} attempt {attempt} failed: {error}",
    "step.retry_scheduled": "retry of {step} scheduled in {delay:.1f}s",
    "run.succeeded": "run succeeded",
    "run.failed": "run failed: {error}",
}


def describe(event: HistoryEvent) -> str | None:
    """One progress line for an audit event (None for the routine ones)."""
    if event.kind == "llm.replied":
        said = event.data.get("content") or "(no text)"
        return f"[cyan]model[/cyan]: {_short(said, 90)}"
    if event.kind == "tool.called":
        return (
            f"[magenta]tool[/magenta] {event.data.get('tool')}"
            f"({_short(event.data.get('arguments') or '', 60)}) -> "
            f"{_short(event.data.get('result') or '', 60)}"
        )
    label = _LABELS.get(event.kind)
    if event.kind == "step.succeeded":
        return None  # the model's and the tools' lines say more
    if label is None:
        return None
    values: dict[str, Any] = {
        "step": event.step,
        "actor": event.actor,
        "attempt": "?",
        "approvers": "",
        "error": "",
        "delay": 0.0,
        **event.data,
    }
    if isinstance(values["approvers"], list):
        values["approvers"] = ", ".join(values["approvers"])
    return label.format(**values)


class Follower:
    """Prints a run's new audit events as they happen."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.seen = 0

    def poll(self) -> None:
        events = run_history(self.run_id)
        for event in events[self.seen :]:
            line = describe(event)
            if line:
                console.print(f"  [dim]{event.at:%H:%M:%S}[/dim]  {line}")
        self.seen = len(events)


def _short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def timeline(run_id: str) -> None:
    """Print the steps, tool calls, approval and LLM usage of a run."""
    steps = Table(title="Steps (every attempt on record)", title_justify="left")
    for col in ("seq", "step", "attempt", "status", "outcome", "worker"):
        steps.add_column(col)
    for s in run_steps(run_id):
        steps.add_row(
            str(s.seq),
            s.step,
            str(s.attempt),
            s.status,
            s.outcome or "",
            (s.worker or "-").split("@")[0],
        )
    console.print(steps)

    messages = journal.load_messages(get_db(), run_id)
    results = {m.get("tool_call_id"): m.get("content") for m in messages if m["role"] == "tool"}
    tools = Table(title="Tool calls (why: the model's words before each)", title_justify="left")
    for col in ("why", "tool", "arguments", "result"):
        tools.add_column(col, overflow="fold")
    for m in messages:
        for call in m.get("tool_calls") or []:
            fn = call["function"]
            tools.add_row(
                _short(m.get("content") or "", 40),
                fn["name"],
                _short(fn["arguments"], 50),
                _short(results.get(call["id"], ""), 50),
            )
    console.print(tools)

    llm = Table(title="LLM calls (journaled: never paid twice)", title_justify="left")
    for col in ("call", "model", "tokens", "cost (USD)"):
        llm.add_column(col)
    for entry in journal.usage_by_call(get_db(), run_id):
        if entry.kind == "llm":
            llm.add_row(entry.name, entry.model or "-", str(entry.tokens), f"{entry.cost_usd:.6f}")
    console.print(llm)
    for e in run_history(run_id):
        if e.kind.startswith("wait."):
            decision = e.kind.split(".")[1]
            console.print(f"Approval: {decision} by {e.actor} at {e.at:%Y-%m-%d %H:%M:%S} UTC")


@dataclass
class Check:
    """One claim of the proof and whether it held."""

    claim: str
    ok: bool
    seen: str


def print_proof(checks: list[Check]) -> bool:
    """Print the proof table; True if every claim held."""
    table = Table(title="Proof", title_justify="left")
    for col in ("", "claim", "seen"):
        table.add_column(col)
    for c in checks:
        table.add_row("[green]PASS[/green]" if c.ok else "[red]FAIL[/red]", c.claim, c.seen)
    console.print(table)
    return all(c.ok for c in checks)
