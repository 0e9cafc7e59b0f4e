"""The OpenAI client as the agent uses it: one Chat Completions call, classified and normalised.

The client is built lazily in each process (never across a fork) with the SDK's own retries
off (``max_retries=0``): SDK retries would be invisible, unjournaled paid calls inside one
attempt. The step's retry policy owns retries instead, from the posture :func:`classify` puts
on the error (``retryable``, ``retry_after``), and waits durably (``sleeping`` with
``wake_at``), not in a worker.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import openai
from openai import OpenAI

from pipeline.agent import pricing
from pipeline.agent.replycap import HEADERS, ReplyTooLarge, http_client
from pipeline.errors import LLMError
from pipeline.redact import redact, redact_text
from pipeline.settings import Settings, get_settings

log = logging.getLogger("ravel.agent")

RUN_ID_HEADER = "X-Ravel-Run-Id"
MAX_OUTPUT_CHARS = 1_000_000  # stored LLM output cap; more is cut (and marked) before the journal
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_lock = threading.Lock()
_clients: dict[tuple[int, str | None, str, float], OpenAI] = {}


def request_timeout(step_time_limit: float) -> float:
    """Seconds an LLM request may take: below the step's time limit, so the step can record it.

    Leaves 30 s (or a fifth of a short limit) for the step to journal and commit.
    """
    margin = 30.0 if step_time_limit > 60 else step_time_limit / 5
    return max(1.0, step_time_limit - margin)


def _api_key(settings: Settings) -> str:
    if settings.openai_api_key:
        return settings.openai_api_key
    if settings.openai_base_url:
        return "unused"  # OpenAI-compatible servers (Ollama, the scripted server) need none
    raise LLMError(
        "OPENAI_API_KEY is not set: set it, or set OPENAI_BASE_URL to an OpenAI-compatible server",
        retryable=False,
    )


def get_client() -> OpenAI:
    """This process's OpenAI client for the current settings (built on first use)."""
    settings = get_settings()
    api_key = _api_key(settings)
    # The key is hashed into the cache key so that no copy of it sits in another structure.
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    cache_key = (os.getpid(), settings.openai_base_url, digest, settings.step_time_limit)
    with _lock:
        client = _clients.get(cache_key)
        if client is None:
            client = OpenAI(
                api_key=api_key,
                base_url=settings.openai_base_url,
                max_retries=0,
                timeout=openai.Timeout(request_timeout(settings.step_time_limit), connect=5.0),
                # Replies over a size cap are refused unread, not held in memory whole.
                http_client=http_client(),
                default_headers=HEADERS,
            )
            _clients[cache_key] = client
    return client


def estimate_tokens(value: Any) -> int:
    """A rough token count of a JSON value (a quarter token per character)."""
    return math.ceil(len(json.dumps(value, separators=(",", ":"), default=str)) / 4)


def complete(
    *,
    run_id: str,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] = (),
    max_output_tokens: int | None = None,
) -> dict[str, Any]:
    """Make one Chat Completions call and return its normalised JSON record.

    Raises:
        LLMError: the call failed; its ``retryable`` and ``retry_after`` say what to do.
    """
    client = get_client()
    started = time.monotonic()
    try:
        completion = client.chat.completions.create(
            model=model,
            messages=cast(Any, list(messages)),
            tools=cast(Any, list(tools)) if tools else openai.omit,
            max_completion_tokens=max_output_tokens if max_output_tokens else openai.omit,
            extra_headers={RUN_ID_HEADER: run_id},
        )
    except openai.OpenAIError as exc:
        error = classify(exc)
        log.warning(
            "run %s: LLM call failed after %.1fs (request %s): %s",
            run_id,
            time.monotonic() - started,
            error.request_id,
            error,
        )
        raise error from None
    # Estimated only for a server that sends no usage: encoding the whole conversation to
    # count it would cost Ravel time that grows with every turn.
    return normalise(completion, model, lambda: estimate_tokens([messages, tools]))


def classify(exc: openai.OpenAIError) -> LLMError:
    """Map an SDK error to an :class:`LLMError` with the retry posture Ravel gives it.

    408, 409, 429 and 5xx, timeouts and lost connections are retryable (honouring
    ``retry-after-ms``/``retry-after``); a 429 whose code is ``insufficient_quota`` is a billing
    problem, and any other 4xx is permanent. ``x-should-retry: true|false`` overrides the
    status, as the SDK's own retry logic does.
    """
    if isinstance(exc, ReplyTooLarge):
        # No model writes that much: a broken server or proxy, which a retry would pay again.
        return LLMError(str(exc), retryable=False)
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("the LLM request timed out (it may still have been billed)", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(f"could not reach the LLM API: {exc.message}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc)
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMError(f"the LLM API answered something unreadable: {exc.message}", retryable=True)
    return LLMError(f"the LLM client failed: {redact_text(str(exc), 500)}", retryable=False)


def _classify_status(exc: openai.APIStatusError) -> LLMError:
    status = exc.status_code
    body = exc.body if isinstance(exc.body, Mapping) else {}
    message = body.get("message") if isinstance(body.get("message"), str) else None
    message = redact_text(message or exc.message, 1000)
    label = " ".join(str(v) for v in (status, exc.code or exc.type) if v)
    headers = exc.response.headers
    retryable = status in _RETRYABLE_STATUS or status >= 500
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    if status == 429 and exc.code == "insufficient_quota":
        retryable = False  # out of credit: waiting does not help
    wait = parse_retry_after(headers) if retryable else None
    if retryable:
        text = f"the LLM API failed (HTTP {label}): {message}"
        if wait is not None:
            text += f"; it asked to retry after {wait:g}s"
    else:
        text = f"the LLM API refused the request (HTTP {label}): {message}"
    return LLMError(
        text, retryable=retryable, retry_after=wait, status=status, request_id=exc.request_id
    )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date)."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) / divisor
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return None


def normalise(
    completion: Any, requested_model: str, prompt_estimate: Callable[[], int]
) -> dict[str, Any]:
    """One JSON record per call: the reply, its finish reason, usage and cost.

    Compatible servers may omit ``usage``; the call is then billed by estimate (marked
    ``estimated``, ``prompt_estimate`` is called) so budgets still see it.
    """
    if not completion.choices:
        raise LLMError("the LLM API returned no choices", retryable=True)
    choice = completion.choices[0]
    msg = choice.message
    calls = []
    for index, tc in enumerate(msg.tool_calls or []):
        fn = tc.function if tc.type == "function" else None
        name = fn.name if fn else getattr(getattr(tc, "custom", None), "name", tc.type)
        arguments = fn.arguments if fn else getattr(getattr(tc, "custom", None), "input", "")
        calls.append(
            {
                "id": tc.id or f"call_{index}",
                "type": "function",
                "function": {"name": name, "arguments": redact(arguments)},
            }
        )
    content = msg.content
    truncated = content is not None and len(content) > MAX_OUTPUT_CHARS
    if truncated:
        content = content[:MAX_OUTPUT_CHARS]
    usage = _usage(completion.usage, prompt_estimate, content, calls)
    model = completion.model or requested_model
    record = {
        "id": completion.id,
        "model": model,
        "finish_reason": choice.finish_reason,
        # A model that echoes a secret must not get it into the journal or the conversation.
        "content": redact(content),
        "tool_calls": calls,
        "refusal": redact(getattr(msg, "refusal", None)),
        "usage": usage,
        "cost_usd": pricing.cost_usd(
            model, usage["prompt_tokens"], usage["completion_tokens"], usage["cached_tokens"]
        ),
        "truncated": truncated,
    }
    return record


def _usage(
    usage: Any, prompt_estimate: Callable[[], int], content: str | None, calls: list[dict[str, Any]]
) -> dict[str, Any]:
    if usage is None:
        completion = estimate_tokens([content or "", calls]) if (content or calls) else 0
        prompt = prompt_estimate()
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
            "estimated": True,
        }
    prompt = int(usage.prompt_tokens or 0)
    completion = int(usage.completion_tokens or 0)
    cached = getattr(usage.prompt_tokens_details, "cached_tokens", None) or 0
    reasoning = getattr(usage.completion_tokens_details, "reasoning_tokens", None) or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.total_tokens or prompt + completion),
        "cached_tokens": int(cached),
        "reasoning_tokens": int(reasoning),
        "estimated": False,
    }


def usage_of(record: Mapping[str, Any]) -> tuple[int, float, str | None]:
    """(tokens, cost in USD, model) of a journaled call record, for the journal's columns."""
    return int(record["usage"]["total_tokens"]), float(record["cost_usd"]), record.get("model")
