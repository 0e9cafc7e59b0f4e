"""The OpenAI client as the agent builds it, error postures per status, usage and prices.

Calls go through the real SDK to the scripted server (the SDK's httpx2 transport is not
intercepted by in-process mocks)."""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.agent import llm, pricing
from pipeline.agent.budget import Budget, Spent, llm_overrun, tool_overrun
from pipeline.errors import ConfigurationError, LLMError
from pipeline.settings import get_settings, reload_settings
from pipeline.testing import ScriptedLLMServer
from tests.support.agents import MODEL, scripted_llm

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    yield
    get_settings.cache_clear()  # re-read once monkeypatch has restored the environment


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    with scripted_llm(monkeypatch) as srv:
        yield srv


def fail_with(server: ScriptedLLMServer, **fault: Any) -> LLMError:
    server.set_script({"turns": [{"content": "x", "fault": fault}]})
    with pytest.raises(LLMError) as caught:
        llm.complete(run_id="run-1", model=MODEL, messages=USER)
    assert server.stats("run-1")["failed_calls"] == 1  # one request: no SDK retries
    server.reset_stats()
    return caught.value


def test_the_client_has_no_sdk_retries_and_a_timeout_below_the_step_limit(server, monkeypatch):
    monkeypatch.setenv("RAVEL_STEP_TIME_LIMIT", "300")
    reload_settings()
    client = llm.get_client()
    assert client.max_retries == 0
    assert client.timeout.read == 270 and client.timeout.connect == 5
    assert llm.get_client() is client  # built once per process and settings
    assert str(client.base_url).rstrip("/") == server.base_url
    assert client.api_key == "unused"  # a base URL without a key gets a dummy
    assert llm.request_timeout(20) == 16


def test_calls_are_attributed_to_the_run_and_normalised(server):
    server.set_script(
        {"turns": [{"content": "hi", "usage": {"prompt_tokens": 2000, "completion_tokens": 1000}}]}
    )
    record = llm.complete(run_id="run-7", model=MODEL, messages=USER)
    assert server.stats("run-7")["calls"] == 1
    assert record["content"] == "hi" and record["finish_reason"] == "stop"
    assert record["model"] == MODEL and record["tool_calls"] == []
    assert record["usage"] == {
        "prompt_tokens": 2000,
        "completion_tokens": 1000,
        "total_tokens": 3000,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "estimated": False,
    }
    assert record["cost_usd"] == pytest.approx((2000 * 0.15 + 1000 * 0.60) / 1e6)
    assert llm.usage_of(record) == (3000, record["cost_usd"], MODEL)


def test_secrets_in_model_output_are_redacted(server):
    server.set_script({"turns": [{"content": "the key is sk-abcdefghijklmnop1234"}]})
    record = llm.complete(run_id="r", model=MODEL, messages=USER)
    assert "sk-abcdefghijklmnop1234" not in record["content"]


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503])
def test_retryable_statuses(server, status):
    error = fail_with(server, status=status)
    assert error.retryable and error.status == status and error.retry_after is None


def test_429_is_retryable_and_honours_retry_after(server):
    error = fail_with(server, status=429, retry_after=12.5)
    assert error.retryable and error.retry_after == 12.5
    assert "429" in str(error) and "12.5s" in str(error)
    assert error.request_id and error.request_id.startswith("req_")


def test_429_insufficient_quota_is_permanent(server):
    error = fail_with(server, status=429, code="insufficient_quota", message="You exceeded")
    assert not error.retryable and "You exceeded" in str(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_are_permanent_with_the_api_message(server, status):
    error = fail_with(server, status=status, message=f"scripted {status} problem")
    assert not error.retryable
    assert f"scripted {status} problem" in str(error) and str(status) in str(error)


def test_x_should_retry_overrides_the_status(server):
    assert not fail_with(server, status=500, should_retry=False).retryable
    assert fail_with(server, status=400, should_retry=True).retryable


def test_a_timeout_is_retryable(server, monkeypatch):
    monkeypatch.setenv("RAVEL_STEP_TIME_LIMIT", "1")  # 0.8 s per request
    reload_settings()
    server.set_script({"turns": [{"content": "x", "fault": {"hang": 2}}]})
    with pytest.raises(LLMError) as caught:
        llm.complete(run_id="r", model=MODEL, messages=USER)
    assert caught.value.retryable and "timed out" in str(caught.value)


def test_an_unreachable_server_is_retryable(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    reload_settings()
    with pytest.raises(LLMError) as caught:
        llm.complete(run_id="r", model=MODEL, messages=USER)
    assert caught.value.retryable and "could not reach" in str(caught.value)


def test_no_key_and_no_base_url_is_a_permanent_configuration_error(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    reload_settings()
    with pytest.raises(LLMError, match="OPENAI_API_KEY") as caught:
        llm.get_client()
    assert not caught.value.retryable


def test_retry_after_headers():
    assert llm.parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert llm.parse_retry_after({"retry-after": "9"}) == 9.0
    later = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= (llm.parse_retry_after({"retry-after": later}) or 0) <= 61
    assert llm.parse_retry_after({"retry-after": "soon"}) is None
    assert llm.parse_retry_after({}) is None


def test_a_reply_without_usage_is_billed_by_estimate():
    class Choice:
        finish_reason = "stop"

        class message:
            content = "x" * 400
            tool_calls = None
            refusal = None

    class Completion:
        id, model, usage, choices = "c1", None, None, [Choice]

    record = llm.normalise(Completion, MODEL, prompt_estimate=lambda: 250)
    assert record["model"] == MODEL
    assert record["usage"]["estimated"] is True
    assert record["usage"]["prompt_tokens"] == 250 and record["usage"]["completion_tokens"] >= 100


def test_prices(monkeypatch):
    assert pricing.price_of("gpt-4o-mini-2024-07-18") == pricing.DEFAULT_PRICES["gpt-4o-mini"]
    assert pricing.price_of("gpt-4o-2024-08-06") == pricing.DEFAULT_PRICES["gpt-4o"]
    assert pricing.price_of("llama3") is None
    assert pricing.cost_usd("llama3", 1000, 1000) == 0.0
    assert pricing.cost_usd("gpt-4o-mini", 1_000_000, 1_000_000, cached_tokens=500_000) == (
        pytest.approx(0.5 * 0.15 + 0.5 * 0.075 + 0.60)
    )
    monkeypatch.setenv("RAVEL_PRICES", '{"llama3": [1, 2], "*": {"input": 3, "output": 4}}')
    assert pricing.cost_usd("llama3", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert pricing.cost_usd("other", 1_000_000, 0) == pytest.approx(3.0)
    monkeypatch.setenv("RAVEL_PRICES", "{not json")
    with pytest.raises(ConfigurationError, match="RAVEL_PRICES"):
        pricing.price_table()
    monkeypatch.setenv("RAVEL_PRICES", '{"m": {"inp": 1}}')
    with pytest.raises(ConfigurationError, match="price of 'm'"):
        pricing.price_table()


def test_budget_messages_say_which_budget_and_by_how_much():
    used = Spent(tokens=900, cost_usd=0.5, tool_calls=3)
    assert llm_overrun(Budget(max_tokens=1000), used, 50, 0.0, "x") is None
    why = llm_overrun(Budget(max_tokens=1000), used, 150, 0.0, "LLM call llm:4")
    assert why == (
        "budget max_tokens=1000 would be exceeded by LLM call llm:4: 900 tokens "
        "used + about 150 for the call = 1050 (50 over); the call was not made"
    )
    why = llm_overrun(Budget(max_cost_usd=0.6), used, 10, 0.25, "y")
    assert why is not None and "max_cost_usd=0.6" in why and "($0.150000 over)" in why
    assert "no price" in (llm_overrun(Budget(max_cost_usd=1), used, 1, None, "z") or "")
    assert tool_overrun(Budget(max_tool_calls=4), used, "t") is None
    assert "(1 over)" in (tool_overrun(Budget(max_tool_calls=3), used, "t") or "")
    assert Budget(max_tokens=10).with_overrides({"max_tokens": 20, "evil": 1}).max_tokens == 20
    with pytest.raises(ConfigurationError):
        Budget(max_tokens=-1)
