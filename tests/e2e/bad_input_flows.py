"""Workflows of the bad-input tests (``tests/e2e/test_bad_input.py``): two workflows with a
step of the same name, and an agent the scripted LLM server answers (hugely, on cue)."""

from __future__ import annotations

from typing import Any

from pipeline import Agent, Done, RetryPolicy, StepContext, Workflow

twin_a = Workflow("bad_twin_a", version=1)
twin_b = Workflow("bad_twin_b", version=1)


@twin_a.step(start=True, name="go")
def go_a(ctx: StepContext) -> Any:
    return Done({"by": "bad_twin_a"})


@twin_b.step(start=True, name="go")
def go_b(ctx: StepContext) -> Any:
    return Done({"by": "bad_twin_b"})


talker = Agent(
    "bad_talker", "Answer briefly.", retry=RetryPolicy(max_attempts=2, initial_delay=0.1)
)

#: A normal answer, and 50 MB of content for a message that says "huge".
SCRIPT = {
    "routes": [{"match": "huge", "turns": [{"content": "big", "fault": {"huge": 50_000_000}}]}],
    "turns": [{"content": "a short answer"}],
}
