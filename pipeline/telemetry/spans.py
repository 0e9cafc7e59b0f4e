"""OpenTelemetry spans of a run's steps and of the LLM, tool and effect calls they make.

Only with the ``otel`` extra (``opentelemetry-api``) installed: otherwise every function here
does nothing and nothing imports ``opentelemetry``. Spans go to the global tracer provider,
which the application configures (an SDK with an exporter); without one they are no-ops.

One trace per run, across workers and days: its trace id is the run's UUID (128 bits), and
every step span is a child of a run span whose id is derived from the run id. That run span
is never recorded (a run may last days; a span is exported when it ends), so a trace shows
the steps as children of a parent it does not hold. LLM calls follow the GenAI semantic
conventions (``gen_ai.*``: operation, provider, model, tokens, finish reasons); tool calls
are ``execute_tool`` spans. Errors and tool arguments are redacted (:mod:`pipeline.redact`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.redact import redact, redact_text

if TYPE_CHECKING:
    from pipeline.context import StepContext

T = TypeVar("T")
_MISSING = object()
_tracer: Any = _MISSING  # None: the extra is not installed
#: longest attribute text (arguments, errors)
MAX_TEXT = 4000


def tracer() -> Any | None:
    """Ravel's tracer, or None without ``opentelemetry-api``."""
    global _tracer
    if _tracer is _MISSING:
        try:
            from opentelemetry import trace
        except ImportError:
            _tracer = None
        else:
            # A proxy until the application sets a provider, then that provider's tracer.
            _tracer = trace.get_tracer("ravel")
    return _tracer


def run_context(run_id: str) -> Any:
    """The OpenTelemetry context whose parent is the run's (unrecorded) span.

    Trace id: the run id's 128 bits; span id: 64 bits of SHA-256 of the run id. Sampled, so
    every step of a run is in its trace or none is.
    """
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    rid = uuid.UUID(run_id)
    span_id = int.from_bytes(hashlib.sha256(b"ravel-run:" + rid.bytes).digest()[:8], "big")
    parent = SpanContext(
        rid.int, span_id or 1, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def trace_id_of(run_id: str) -> str:
    """The trace id of a run as tracing UIs show it: its UUID as 32 hex digits."""
    return uuid.UUID(run_id).hex


def fail(span: Any, error: str) -> None:
    """Mark ``span`` failed with ``error`` (redacted, never a traceback or frame locals)."""
    from opentelemetry.trace import Status, StatusCode

    text = redact_text(error, MAX_TEXT)
    span.set_status(Status(StatusCode.ERROR, text))
    span.set_attribute("error.type", text.split(":", 1)[0][:200])


def _tool_call(ctx: StepContext, call_id: str) -> tuple[str, Any]:
    """(function name, arguments) of tool call ``call_id``, as the model asked for it."""
    for message in reversed(ctx.messages):
        for call in message.get("tool_calls") or ():
            if call.get("id") == call_id:
                function = call.get("function") or {}
                return str(function.get("name") or "tool"), function.get("arguments")
    return "tool", None


def _text(value: Any) -> str:
    """A JSON value as attribute text, secrets masked and cut."""
    masked = redact(value)
    text = masked if isinstance(masked, str) else json.dumps(masked, default=str)
    return redact_text(text, MAX_TEXT)


def _llm_attributes(span: Any, record: Any) -> None:
    if not isinstance(record, dict):
        return
    usage = record.get("usage") or {}
    model = record.get("model")
    if model:
        span.update_name(f"chat {model}")
        span.set_attribute("gen_ai.response.model", str(model))
    if record.get("id"):
        span.set_attribute("gen_ai.response.id", str(record["id"]))
    if record.get("finish_reason"):
        span.set_attribute("gen_ai.response.finish_reasons", [str(record["finish_reason"])])
    for key, attribute in (
        ("prompt_tokens", "gen_ai.usage.input_tokens"),
        ("completion_tokens", "gen_ai.usage.output_tokens"),
    ):
        if isinstance(usage.get(key), int):
            span.set_attribute(attribute, usage[key])
    if isinstance(record.get("cost_usd"), int | float):
        span.set_attribute("ravel.cost_usd", float(record["cost_usd"]))


def traced_call(ctx: StepContext, kind: str, name: str, call: Callable[[], T]) -> T:
    """Make a journaled call (``effect``, ``llm`` or ``tool``) inside a span, if tracing.

    Only calls really made get a span: a result replayed from the journal is not a call.
    """
    found = tracer()
    if found is None:
        return call()
    from opentelemetry import trace

    parent = (
        None if trace.get_current_span().get_span_context().is_valid else run_context(ctx.run_id)
    )
    attributes: dict[str, Any] = {
        "ravel.run_id": ctx.run_id,
        "ravel.workflow": ctx.workflow,
        "ravel.step": ctx.step,
        "ravel.seq": ctx.seq,
        "ravel.attempt": ctx.attempt,
        "ravel.journal.name": name,
    }
    if kind == "llm":
        span_name = "chat"
        attributes.update(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.system": "openai",
            }
        )
    elif kind == "tool":
        call_id = name.removeprefix("tool:")
        tool, arguments = _tool_call(ctx, call_id)
        span_name = f"execute_tool {tool}"
        attributes.update(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "gen_ai.tool.call.id": call_id,
                "gen_ai.tool.type": "function",
            }
        )
        if arguments is not None:
            attributes["gen_ai.tool.call.arguments"] = _text(arguments)
    else:
        span_name = f"effect {name}"
    client = trace.SpanKind.CLIENT if kind in ("llm", "tool") else trace.SpanKind.INTERNAL
    with found.start_as_current_span(
        span_name,
        context=parent,
        kind=client,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            result = call()
        except Exception as exc:
            fail(span, f"{type(exc).__name__}: {exc}")
            raise
        if kind == "llm":
            _llm_attributes(span, result)
        return result


__all__ = ["fail", "run_context", "trace_id_of", "traced_call", "tracer"]
