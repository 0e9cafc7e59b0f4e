"""Scenario 4, an agent conversation of many turns against the scripted server.

    python -m bench agent_turns [--scale tiny|small|full] [--rounds N]

A Ravel agent (reason, then verify, whose rule answers each reply with a 200-character user
message until the last turn) talks to the scripted OpenAI-compatible server in this process;
its steps run in-process (claim, load the conversation, journaled LLM call, fenced commit)
on a fresh PostgreSQL database. Ravel's own time per turn is the steps' time less the time
inside the OpenAI SDK's call (the model's). Reported: that time for the last 100 turns over
the first 100, and the bytes the conversation stored (tables, indexes and TOAST). LangGraph
with its Postgres checkpointer holds the same conversation when installed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from openai.resources.chat.completions import Completions

from bench import side_langgraph
from bench.harness import Rig, rig
from bench.runner import Result, Scale, alternate, rounds_for, scenario
from pipeline import Agent, start_run
from pipeline.agent.conversation import agent_state
from pipeline.agent.llm import get_client
from pipeline.engine import execute_step
from pipeline.settings import reload_settings
from pipeline.testing.inline import inline_dispatch
from pipeline.testing.llm_server import ScriptedLLMServer

TEXT = ("The quick brown fox jumps over the lazy dog; " * 5)[:200]
MAX_TURNS = 100_000
WINDOW = 100


class ModelClock:
    """Seconds spent inside the OpenAI SDK's Chat Completions call (the model's time)."""

    def __init__(self) -> None:
        """Start at zero."""
        self.seconds = 0.0

    @contextmanager
    def installed(self) -> Iterator[ModelClock]:
        """Time every ``chat.completions.create`` call while the block runs."""
        original = Completions.create

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        Completions.create = timed  # type: ignore[method-assign]
        try:
            yield self
        finally:
            Completions.create = original  # type: ignore[method-assign]


def _verify(turns: int) -> Callable[[Any, str], bool | str]:
    def rule(ctx: Any, answer: str) -> bool | str:
        done = int(agent_state(ctx)["turns"])
        return True if done >= turns else f"[{done}] {TEXT}"[:200]

    return rule


_agents: dict[int, Agent] = {}


def _agent(turns: int) -> Agent:
    """The benchmark's agent for conversations of ``turns`` turns (one workflow per length)."""
    if turns not in _agents:
        _agents[turns] = Agent(
            f"bench_agent_{turns}",
            "You answer briefly.",
            verify=_verify(turns),
            max_turns=MAX_TURNS,
        )
    return _agents[turns]


def _windows(
    per_turn: list[float], before: tuple[int, int], after: tuple[int, int]
) -> dict[str, float]:
    window = min(WINDOW, len(per_turn) // 2)
    first = statistics.median(per_turn[:window]) * 1000
    last = statistics.median(per_turn[-window:]) * 1000
    disk, rows = after[0] - before[0], after[1] - before[1]
    return {
        "first_ms": first,
        "last_ms": last,
        "last_over_first": last / first,
        "bytes": rows,
        "bytes_per_turn": rows / len(per_turn),
        "disk_bytes": disk,
    }


def _ravel(r: Rig, clock: ModelClock, turns: int) -> dict[str, float]:
    """One conversation in Ravel: own time per turn (reason + verify steps, less the model)."""
    agent = _agent(turns)
    before = r.db_bytes()
    per_turn: list[float] = []
    current = 0.0
    with inline_dispatch() as inline:
        start_run(agent.name, {"message": TEXT})
        while inline.queue:
            w = inline.queue.popleft()
            model, start = clock.seconds, time.perf_counter()
            execute_step(
                w.run_id, w.seq, w.step, worker="bench", workflow=w.workflow, version=w.version
            )
            current += time.perf_counter() - start - (clock.seconds - model)
            if w.step == "verify":
                per_turn.append(current)
                current = 0.0
    assert len(per_turn) == turns, f"the conversation had {len(per_turn)} turns, not {turns}"
    return _windows(per_turn, before, r.db_bytes())


def _langgraph(
    chat: side_langgraph.LangGraphChat, clock: ModelClock, turns: int
) -> dict[str, float]:
    before = chat.stored_bytes()
    thread = side_langgraph.thread_id()
    per_turn = []
    for i in range(turns):
        model, start = clock.seconds, time.perf_counter()
        chat.turn(thread, f"[{i}] {TEXT}"[:200])
        per_turn.append(time.perf_counter() - start - (clock.seconds - model))
    return _windows(per_turn, before, chat.stored_bytes())


def _call_model(messages: list[dict[str, Any]]) -> str:
    reply = get_client().chat.completions.create(model="bench", messages=messages)  # type: ignore[arg-type]
    return reply.choices[0].message.content or ""


@contextmanager
def _maybe_langgraph() -> Iterator[side_langgraph.LangGraphChat | None]:
    if side_langgraph.version() is None:
        yield None
        return
    with side_langgraph.langgraph_chat(_call_model) as chat:
        yield chat


@scenario("agent_turns", 4, "An agent conversation against the scripted server")
def agent_turns(scale: Scale) -> Result:
    """Own time per turn (first and last 100) and bytes stored, per system."""
    turns = scale.pick(500, 200, 20)
    rounds = rounds_for(scale, 2, 1, 1)
    result = Result(
        "agent_turns",
        "agent conversation",
        settings={
            "turns": turns,
            "message_chars": len(TEXT),
            "rounds": rounds,
            "window": WINDOW,
            "ravel": "Agent reason+verify in-process (inline dispatch) on PostgreSQL",
        },
    )
    server = ScriptedLLMServer({"turns": [{"content": TEXT}]})
    with server, rig(workers=0, extra_env={"OPENAI_BASE_URL": server.base_url}) as r:
        reload_settings()
        clock = ModelClock()
        with clock.installed(), _maybe_langgraph() as chat:
            systems: dict[str, Callable[[], dict[str, float]]] = {
                "ravel": lambda: _ravel(r, clock, turns)
            }
            if chat is not None:
                systems["langgraph"] = lambda: _langgraph(chat, clock, turns)
            got = alternate(rounds, systems)
    _report(result, got, turns)
    return result


def _report(result: Result, got: dict[str, dict[str, list[float]]], turns: int) -> None:
    w = min(WINDOW, turns // 2)
    label = {"ravel": "Ravel", "langgraph": "LangGraph + PostgresSaver"}
    for name, figures in got.items():
        first = result.measure(f"{name}_first_ms", "ms", figures["first_ms"])
        last = result.measure(f"{name}_last_ms", "ms", figures["last_ms"])
        ratio = result.measure(f"{name}_last_over_first", "x", figures["last_over_first"])
        stored = result.measure(f"{name}_bytes", "B", figures["bytes"])
        per = result.measure(f"{name}_bytes_per_turn", "B", figures["bytes_per_turn"])
        disk = result.measure(f"{name}_disk_bytes", "B", figures["disk_bytes"])
        result.row(
            f"{label[name]}: own time per turn, first {w} / last {w}",
            f"{first.text()} / {last.text()}",
        )
        result.row(
            f"{label[name]}: last {w} / first {w}",
            ratio.text(),
            "<= 1.2x" if name == "ravel" else "",
            ratio.median <= 1.2 if name == "ravel" else None,
        )
        result.row(
            f"{label[name]}: bytes stored (rows), {turns} turns",
            f"{stored.median / 1e6:.3f} MB ({per.median / 1000:.2f} kB per turn); on disk "
            f"{disk.median / 1e6:.2f} MB",
        )
    if "langgraph" in got:
        share = [
            a / b for a, b in zip(got["ravel"]["bytes"], got["langgraph"]["bytes"], strict=True)
        ]
        over = result.measure("ravel_bytes_over_langgraph", "x", share)
        result.row("bytes stored: Ravel / LangGraph", over.text(3), "<= 0.1x", over.median <= 0.1)
    else:
        result.notes.append("LangGraph not installed (pip install -e '.[bench]')")
