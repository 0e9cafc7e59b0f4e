"""OpenTelemetry spans (the otel extra), exported in-process: one trace per run whose id is the
run's UUID, across its steps and an approval; a span per step attempt, per LLM call (GenAI
attributes: model, tokens, finish reason) and per tool call; replays are not calls; errors and
secrets redacted."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from pipeline import (
    Agent,
    Approval,
    Done,
    RetryPolicy,
    Workflow,
    approve,
    get_run,
    start_run,
    tool,
)
from pipeline.telemetry import spans
from pipeline.testing import ScriptedLLMServer
from pipeline.testing.inline import InlineDispatcher
from tests.support.agents import ledger, scripted_llm, settle, unique

CANARY = "sk-canary0123456789abcdef"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Ravel's tracer from a private provider exporting to memory (the global one untouched)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(spans, "_tracer", provider.get_tracer("ravel"))
    yield exporter
    provider.shutdown()


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    with scripted_llm(monkeypatch) as server:
        yield server


@tool
def lookup(sku: str) -> dict[str, Any]:
    """Look a product up.

    Args:
        sku: its SKU.
    """
    return {"sku": sku, "price": 12.5, "api_key": CANARY}


@tool(approval=Approval(approvers=["finance"], timeout=timedelta(days=3)))
def charge(amount: float) -> dict[str, Any]:
    """Charge the customer.

    Args:
        amount: USD.
    """
    return {"charged": amount}


def _of(exporter: InMemorySpanExporter, run_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.attributes and s.attributes.get("ravel.run_id") == run_id
    ]


def test_one_trace_per_run_with_step_llm_and_tool_spans(
    sqlite_db: str,
    inline: InlineDispatcher,
    llm: ScriptedLLMServer,
    exported: InMemorySpanExporter,
) -> None:
    llm.set_script(
        {
            "turns": [
                {
                    "content": "Looking it up.",
                    "tool_calls": [{"name": "lookup", "arguments": {"sku": f"A-1 {CANARY}"}}],
                },
                {"tool_calls": [{"name": "charge", "arguments": {"amount": 12.5}}]},
                {"content": "Charged $12.50."},
            ]
        }
    )
    agent = Agent(unique("traced"), "Buy it.", tools=[lookup, charge])
    run_id = agent.start("Buy A-1")
    assert settle(inline, run_id).status == "waiting"
    approve(run_id, "finance")  # later, maybe days later, on another worker
    assert settle(inline, run_id).status == "succeeded"

    found = _of(exported, run_id)
    rid = uuid.UUID(run_id)
    assert {s.context.trace_id for s in found} == {rid.int}  # the run's UUID is the trace id
    assert spans.trace_id_of(run_id) == f"{rid.int:032x}"

    steps = [s for s in found if s.kind is SpanKind.CONSUMER]
    names = [s.name for s in steps]
    assert names[:4] == [
        f"{agent.name}.reason",
        f"{agent.name}.act",
        f"{agent.name}.reason",
        f"{agent.name}.act",
    ]
    run_parent = spans.run_context(run_id)
    from opentelemetry import trace

    parent_id = trace.get_current_span(run_parent).get_span_context().span_id
    assert {s.parent.span_id for s in steps if s.parent} == {parent_id}
    assert all(s.attributes["ravel.attempt"] == 1 for s in steps)

    chats = [s for s in found if s.attributes.get("gen_ai.operation.name") == "chat"]
    # Exactly the calls made: the journal's LLM entries, none replayed after the approval.
    assert len(chats) == len([e for e in ledger(run_id) if e.kind == "llm"]) == 3
    first = chats[0]
    assert first.name == "chat gpt-4o-mini" and first.kind is SpanKind.CLIENT
    assert first.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert first.attributes["gen_ai.provider.name"] == "openai"
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert chats[-1].attributes["gen_ai.response.finish_reasons"] == ("stop",)
    billed = sum(
        s.attributes["gen_ai.usage.input_tokens"] + s.attributes["gen_ai.usage.output_tokens"]
        for s in chats
    )
    assert billed == get_run(run_id).tokens
    by_id = {s.context.span_id: s for s in found}
    assert all(by_id[c.parent.span_id].name == f"{agent.name}.reason" for c in chats if c.parent)

    tools = [s for s in found if s.attributes.get("gen_ai.operation.name") == "execute_tool"]
    assert [s.name for s in tools] == ["execute_tool lookup", "execute_tool charge"]
    assert tools[0].attributes["gen_ai.tool.call.id"] == "call_0_0"
    assert '"sku": "A-1 [redacted]"' in tools[0].attributes["gen_ai.tool.call.arguments"]
    assert by_id[tools[1].parent.span_id].name == f"{agent.name}.act"  # type: ignore[union-attr]
    assert CANARY not in "".join(s.to_json() for s in found)


def test_a_failed_attempt_is_an_error_span_with_the_error_redacted(
    sqlite_db: str, inline: InlineDispatcher, exported: InMemorySpanExporter
) -> None:
    flow = Workflow(unique("traced_retry"))
    tries: list[int] = []

    @flow.step(start=True, retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
    def pay(ctx):  # type: ignore[no-untyped-def]
        def call() -> dict[str, str]:
            tries.append(1)
            if len(tries) == 1:
                raise RuntimeError(f"vendor refused token {CANARY}")
            return {"paid": "yes"}

        return Done(ctx.effect("pay", call))

    run_id = start_run(flow.name, {})
    assert settle(inline, run_id).status == "succeeded"
    found = _of(exported, run_id)
    steps = [s for s in found if s.kind is SpanKind.CONSUMER]
    assert [(s.attributes["ravel.attempt"], s.status.status_code) for s in steps] == [
        (1, StatusCode.ERROR),
        (2, StatusCode.UNSET),
    ]
    assert steps[0].status.description == "RuntimeError: vendor refused token [redacted]"
    assert steps[0].attributes["ravel.status"] == "sleeping"  # a retry was scheduled
    effects = [s for s in found if s.name == "effect pay"]
    assert [s.status.status_code for s in effects] == [StatusCode.ERROR, StatusCode.UNSET]
    assert CANARY not in json.dumps([s.to_json() for s in found])
