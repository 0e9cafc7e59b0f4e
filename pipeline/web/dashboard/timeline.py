"""A run's timeline for its dashboard page: each step and attempt, the calls it made (from the
journal ledger), and the state before and after the step as a diff (from the checkpoint each
attempt started from, ``ravel_steps.state_before``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.redact import redact
from pipeline.store.dashboard import Checkpoint
from pipeline.store.records import JournalCall
from pipeline.views import HistoryEvent, RunView, StepView

_MISSING: Any = object()


@dataclass(frozen=True)
class Change:
    """One difference between two states: ``path`` (``vendor``, ``order.amount``)."""

    path: str
    kind: str  # added | removed | changed
    before: Any = None
    after: Any = None


@dataclass
class Call:
    """One journaled call: an LLM call, a tool call or an effect."""

    kind: str
    name: str
    status: str
    calls: int
    started_at: datetime
    finished_at: datetime | None
    model: str | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    content: str | None = None
    finish_reason: str | None = None
    requested: list[tuple[str, Any]] = field(default_factory=list)
    tool: str | None = None
    arguments: Any = None
    result: Any = None
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        """How long the call took (None while it has no result)."""
        if self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at).total_seconds())


@dataclass
class Attempt:
    """One recorded attempt of a step (``view`` None: the attempt running now)."""

    number: int
    view: StepView | None
    checkpoint: Checkpoint | None
    calls: list[Call] = field(default_factory=list)
    patched: list[Change] = field(default_factory=list)
    #: why the run failed, for an attempt that returned ``Fail`` (its record has no error)
    reason: str | None = None

    @property
    def seconds(self) -> float | None:
        """The attempt's duration, claim to commit."""
        if self.view is None or self.view.started_at is None:
            return None
        return max(0.0, (self.view.finished_at - self.view.started_at).total_seconds())


@dataclass
class StepBlock:
    """One step seq of the run: its attempts and what it changed in the state."""

    seq: int
    step: str
    attempts: list[Attempt] = field(default_factory=list)
    changes: list[Change] | None = None
    before: Any = None
    after: Any = None
    note: str | None = None


def diff(before: Any, after: Any, path: str = "") -> list[Change]:
    """The differences from ``before`` to ``after``, key by key into objects; lists whole."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[Change] = []
        for key in [*before, *(k for k in after if k not in before)]:
            where = f"{path}.{key}" if path else str(key)
            old, new = before.get(key, _MISSING), after.get(key, _MISSING)
            if old is _MISSING:
                found.append(Change(where, "added", None, new))
            elif new is _MISSING:
                found.append(Change(where, "removed", old, None))
            else:
                found.extend(diff(old, new, where))
        return found
    if before == after and type(before) is type(after):
        return []
    return [Change(path or "(state)", "changed", before, after)]


def _requested_tools(ledger: list[JournalCall]) -> dict[str, tuple[str, Any]]:
    """tool call id -> (tool name, arguments), from the replies of every LLM call."""
    found: dict[str, tuple[str, Any]] = {}
    for entry in ledger:
        if entry.kind == "llm" and isinstance(entry.result, dict):
            for call in entry.result.get("tool_calls") or ():
                function = call.get("function") or {}
                found[str(call.get("id"))] = (str(function.get("name")), function.get("arguments"))
    return found


def _call(entry: JournalCall, tools: dict[str, tuple[str, Any]]) -> Call:
    result = redact(entry.result)
    found = Call(
        entry.kind,
        entry.name,
        entry.status,
        entry.calls,
        entry.started_at,
        entry.finished_at,
        entry.model,
        int(entry.tokens or 0),
        float(entry.cost_usd or 0.0),
        result=result,
    )
    if entry.kind == "llm" and isinstance(result, dict):
        found.content = result.get("content")
        found.finish_reason = result.get("finish_reason")
        found.requested = [
            (str((c.get("function") or {}).get("name")), (c.get("function") or {}).get("arguments"))
            for c in result.get("tool_calls") or ()
        ]
    elif entry.kind == "tool":
        call_id = entry.name.removeprefix("tool:")
        found.tool, arguments = tools.get(call_id, (call_id, None))
        found.arguments = redact(arguments)
    elif "!raised" in entry.name and isinstance(result, dict):  # a tool that raised
        found.kind, found.tool = (
            "tool",
            tools.get(entry.name.removeprefix("tool:").split("!", 1)[0], ("tool", None))[0],
        )
        found.error = str(result.get("error"))
        found.result = None
    return found


def _attempt_for(attempts: list[Attempt], entry: JournalCall) -> Attempt:
    """The attempt whose time window holds the call's start (else the step's last)."""
    for attempt in attempts:
        view = attempt.view
        if view is None or view.started_at is None:
            continue
        if view.started_at <= entry.started_at <= view.finished_at:
            return attempt
    return attempts[-1]


def _states(block: StepBlock, following: StepBlock | None, run: RunView) -> None:
    """Fill the block's before, after and changes, or say why they are not known."""
    recorded = [a for a in block.attempts if a.checkpoint and a.checkpoint.state_before is not None]
    if not recorded:
        block.note = (
            (
                "no checkpoint was recorded for this step (steps recorded before "
                "migration 0003 keep none)"
            )
            if block.attempts[0].view
            else None
        )
        return
    last = block.attempts[-1].view
    succeeded = any(a.view is not None and a.view.status == "succeeded" for a in block.attempts)
    block.before = redact(recorded[-1].checkpoint.state_before)  # type: ignore[union-attr]
    after: Any = _MISSING
    if succeeded:
        nxt = following.attempts[0] if following is not None else None
        if nxt is not None and nxt.checkpoint is not None:
            after = nxt.checkpoint.state_before
        elif nxt is None or nxt.view is None:  # the run's state is the next checkpoint
            after = run.state
    elif last is not None and last.outcome == "fail" and following is None:
        after = run.state  # a step that returned Fail commits the state it left
    if after is _MISSING or after is None:
        block.note = (
            "a failed attempt commits no state"
            if not succeeded
            else "the state after this step is not recorded"
        )
        return
    block.after = redact(after)
    block.changes = diff(block.before, block.after)


def build(
    run: RunView,
    steps: list[StepView],
    checkpoints: list[Checkpoint],
    ledger: list[JournalCall],
    history: list[HistoryEvent],
) -> list[StepBlock]:
    """The run's steps in order, with attempts, calls and state diffs."""
    marks = {(c.seq, c.attempt): c for c in checkpoints}
    # Each attempt that failed the run wrote one run.failed, in the same order.
    reasons = iter([str(e.data.get("error")) for e in history if e.kind == "run.failed"])
    blocks: dict[int, StepBlock] = {}
    for view in steps:
        block = blocks.setdefault(view.seq, StepBlock(view.seq, view.step))
        attempt = Attempt(view.attempt, view, marks.get((view.seq, view.attempt)))
        if view.outcome == "fail":
            attempt.reason = next(reasons, None) if view.error is None else None
            if view.error is not None:
                next(reasons, None)
        block.attempts.append(attempt)
    if run.status == "running" or any(e.seq not in blocks for e in ledger):
        seq = run.seq
        if seq not in blocks or run.status == "running":
            block = blocks.setdefault(seq, StepBlock(seq, run.step))
            block.attempts.append(Attempt(run.attempt, None, None))
    tools = _requested_tools(ledger)
    for entry in ledger:
        block = blocks.setdefault(entry.seq, StepBlock(entry.seq, "?"))
        if not block.attempts:
            block.attempts.append(Attempt(0, None, None))
        _attempt_for(block.attempts, entry).calls.append(_call(entry, tools))
    ordered = [blocks[s] for s in sorted(blocks)]
    for index, block in enumerate(ordered):
        following = ordered[index + 1] if index + 1 < len(ordered) else None
        if following is not None and following.seq != block.seq + 1:
            following = None
        _states(block, following, run)
        _patches(block)
    return ordered


def _patches(block: StepBlock) -> None:
    """Changes between the checkpoints of two attempts of a step: an operator's patch."""
    previous: Any = _MISSING
    for attempt in block.attempts:
        state = attempt.checkpoint.state_before if attempt.checkpoint else None
        if state is None:
            continue
        if previous is not _MISSING:
            attempt.patched = diff(redact(previous), redact(state))
        previous = state


__all__ = ["Attempt", "Call", "Change", "StepBlock", "build", "diff"]
