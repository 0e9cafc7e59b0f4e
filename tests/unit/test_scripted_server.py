"""The scripted OpenAI-compatible server, driven through the real OpenAI SDK."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from pipeline.testing import (
    RUN_ID_HEADER,
    Script,
    ScriptedLLMServer,
    ScriptError,
    fetch_stats,
    reset_stats,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "check_inventory",
            "description": "Look an item up.",
            "parameters": {"type": "object", "properties": {"item": {"type": "string"}}},
        },
    }
]
SCRIPT: dict[str, Any] = {
    "turns": [
        {"tool_calls": [{"name": "check_inventory", "arguments": {"item": "widget"}}]},
        {"content": "widget is in stock", "usage": {"prompt_tokens": 100, "completion_tokens": 7}},
    ],
    "routes": [
        {"match": "refund", "turns": [{"content": "refund route", "finish_reason": "length"}]},
    ],
}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def after_tool_call(text: str) -> list[dict[str, Any]]:
    """The conversation after turn 0's tool call and its result: turn 1."""
    call = {
        "id": "call_0_0",
        "type": "function",
        "function": {"name": "check_inventory", "arguments": '{"item": "widget"}'},
    }
    return [
        *user(text),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0_0", "content": "42 in stock"},
    ]


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start servers for a test; stop them after."""
    servers: list[ScriptedLLMServer] = []

    def _serve(script: dict[str, Any]) -> tuple[ScriptedLLMServer, OpenAI]:
        server = ScriptedLLMServer(script).start()
        servers.append(server)
        return server, OpenAI(base_url=server.base_url, api_key="test", max_retries=0)

    yield _serve
    for server in servers:
        server.stop()


def ask(client: OpenAI, messages: Any, run: str | None = None, **kw: Any) -> Any:
    headers = {RUN_ID_HEADER: run} if run else None
    return client.chat.completions.create(
        model="gpt-test", messages=messages, tools=TOOLS, extra_headers=headers, **kw
    )


def test_tool_call_reply_parses_through_the_sdk(serve: Any) -> None:
    _, client = serve(SCRIPT)
    completion = ask(client, user("is widget in stock?"))
    choice = completion.choices[0]
    assert completion.model == "gpt-test"
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_0_0", "function", "check_inventory")
    assert isinstance(call.function.arguments, str)
    assert json.loads(call.function.arguments) == {"item": "widget"}


def test_turn_is_the_number_of_assistant_messages(serve: Any) -> None:
    _, client = serve(SCRIPT)
    first = ask(client, user("stock?"))
    again = ask(client, user("stock?"))  # a retried request for turn 0
    assert first.choices[0].message.tool_calls[0].function.arguments == (
        again.choices[0].message.tool_calls[0].function.arguments
    )
    second = ask(client, after_tool_call("stock?"))
    assert second.choices[0].message.content == "widget is in stock"
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    past_end = [
        *after_tool_call("stock?"),
        {"role": "assistant", "content": "widget is in stock"},
        {"role": "user", "content": "thanks"},
    ]
    assert ask(client, past_end).choices[0].message.content == "widget is in stock"


def test_routes_match_the_first_user_message_only(serve: Any) -> None:
    _, client = serve(SCRIPT)
    routed = ask(client, user("I want a refund"))
    assert routed.choices[0].message.content == "refund route"
    assert routed.choices[0].finish_reason == "length"
    later = [*user("hello"), {"role": "assistant", "content": "hi"}]
    later.append({"role": "user", "content": "refund please"})
    assert ask(client, later).choices[0].message.content == "widget is in stock"
    parts = [{"role": "user", "content": [{"type": "text", "text": "a refund"}]}]
    assert ask(client, parts).choices[0].message.content == "refund route"


def test_usage_is_counted_per_run_and_in_total(serve: Any) -> None:
    server, client = serve(SCRIPT)
    completion = ask(client, user("stock?"), run="r1")
    turn0 = completion.usage
    # The default bill: a quarter token per character of the canonical request and reply JSON.
    messages_json = json.dumps(user("stock?"), sort_keys=True, separators=(",", ":"))
    tools_json = json.dumps(TOOLS, sort_keys=True, separators=(",", ":"))
    expected_prompt = math.ceil(len(messages_json) / 4) + math.ceil(len(tools_json) / 4)
    assert turn0.prompt_tokens == expected_prompt
    arguments = completion.choices[0].message.tool_calls[0].function.arguments
    assert turn0.completion_tokens == math.ceil(len("check_inventory" + arguments) / 4)
    assert turn0.total_tokens == turn0.prompt_tokens + turn0.completion_tokens

    ask(client, after_tool_call("stock?"), run="r1")  # scripted usage: 100 + 7
    ask(client, after_tool_call("stock?"), run="r2")
    ask(client, user("stock?"))  # no run id: run "-"

    r1 = server.stats("r1")
    assert r1["calls"] == 2 and r1["failed_calls"] == 0
    assert r1["prompt_tokens"] == turn0.prompt_tokens + 100
    assert r1["completion_tokens"] == turn0.completion_tokens + 7
    assert r1["total_tokens"] == turn0.total_tokens + 107
    assert r1["by_turn"] == {
        "0": {"calls": 1, "failed_calls": 0},
        "1": {"calls": 1, "failed_calls": 0},
    }
    assert server.stats("r2")["total_tokens"] == 107
    assert server.stats("-")["total_tokens"] == turn0.total_tokens  # same request, same bill
    total = server.stats()
    assert total["calls"] == 4
    assert total["total_tokens"] == 2 * turn0.total_tokens + 2 * 107
    assert server.stats("never-seen")["calls"] == 0


def test_rate_limit_fault_fires_fault_times_per_run_then_replies(serve: Any) -> None:
    server, client = serve(
        {"turns": [{"content": "ok", "fault": {"status": 429, "retry_after": 2}, "fault_times": 2}]}
    )
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client, user("hi"), run="r1")
        assert caught.value.response.headers["retry-after"] == "2"
        assert caught.value.response.headers["retry-after-ms"] == "2000"
        assert caught.value.code == "rate_limit_exceeded"
    assert ask(client, user("hi"), run="r1").choices[0].message.content == "ok"
    with pytest.raises(openai.RateLimitError):  # another run has its own fault counter
        ask(client, user("hi"), run="r2")
    stats = server.stats("r1")
    assert (stats["calls"], stats["failed_calls"]) == (1, 2)
    assert stats["by_turn"] == {"0": {"calls": 1, "failed_calls": 2}}
    assert stats["total_tokens"] > 0 and server.stats("r2")["total_tokens"] == 0


def test_server_error_and_bad_request_faults(serve: Any) -> None:
    _, client = serve(
        {
            "turns": [{"content": "x", "fault": {"status": 500}}],
            "routes": [
                {
                    "match": "bad",
                    "turns": [{"fault": {"status": 400, "message": "context too long"}}],
                },
                {
                    "match": "quota",
                    "turns": [{"fault": {"status": 429, "code": "insufficient_quota"}}],
                },
            ],
        }
    )
    with pytest.raises(openai.InternalServerError) as server_error:
        ask(client, user("hi"))
    assert server_error.value.status_code == 500
    with pytest.raises(openai.BadRequestError) as bad_request:
        ask(client, user("bad"))
    assert "context too long" in str(bad_request.value)
    with pytest.raises(openai.RateLimitError) as quota:
        ask(client, user("quota"))
    assert quota.value.code == "insufficient_quota"
    assert "retry-after" not in quota.value.response.headers


def test_malformed_tool_json_and_huge_content(serve: Any) -> None:
    _, client = serve(
        {
            "turns": [
                {
                    "tool_calls": [{"name": "check_inventory", "arguments": {"item": "widget"}}],
                    "fault": {"malformed_tool_json": True},
                    "fault_times": 1,
                }
            ],
            "routes": [{"match": "big", "turns": [{"content": "big", "fault": {"huge": 50_000}}]}],
        }
    )
    arguments = ask(client, user("hi")).choices[0].message.tool_calls[0].function.arguments
    assert isinstance(arguments, str) and arguments
    with pytest.raises(json.JSONDecodeError):
        json.loads(arguments)
    healed = ask(client, user("hi")).choices[0].message.tool_calls[0].function.arguments
    assert json.loads(healed) == {"item": "widget"}  # fault_times=1: the retry is clean
    content = ask(client, user("big")).choices[0].message.content
    assert content.startswith("big") and len(content.encode()) == 50_000


def test_hang_makes_the_client_time_out_and_stop_is_prompt(serve: Any) -> None:
    server, client = serve({"turns": [{"content": "late", "fault": {"hang": 5}, "fault_times": 1}]})
    with pytest.raises(openai.APITimeoutError):
        ask(client, user("hi"), run="r1", timeout=0.5)
    assert ask(client, user("hi"), run="r1", timeout=2).choices[0].message.content == "late"
    assert server.stats("r1")["calls"] == 1
    started = time.monotonic()
    server.stop()  # wakes the still-hanging first request
    assert time.monotonic() - started < 2
    with pytest.raises(openai.APIConnectionError):
        ask(client, user("hi"), timeout=2)


def test_stream_bad_json_unknown_path_and_oversized_body_get_json_errors(serve: Any) -> None:
    server, client = serve(SCRIPT)
    with pytest.raises(openai.BadRequestError) as streaming:
        ask(client, user("hi"), stream=True)
    assert "stream" in str(streaming.value)
    root = server.base_url.removesuffix("/v1")

    def post(path: str, data: bytes) -> tuple[int, Any]:
        request = urllib.request.Request(root + path, data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, body = post("/v1/chat/completions", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body = post("/v1/chat/completions", json.dumps({"model": "m"}).encode())
    assert status == 400 and "messages" in body["error"]["message"]
    status, body = post("/v1/nowhere", b"{}")
    assert status == 404 and body["error"]["type"] == "not_found_error"
    status, body = post("/v1/chat/completions", b" " * (10 * 1024 * 1024 + 1))
    assert status == 413 and "error" in body
    assert server.stats()["calls"] == 0 and server.stats()["failed_calls"] == 0
    assert [model.id for model in client.models.list()] == ["scripted-model"]


def test_fetch_stats_over_http_equals_in_process_stats_and_reset(serve: Any) -> None:
    server, client = serve(
        {"turns": [{"content": "ok", "fault": {"status": 500}, "fault_times": 1}]}
    )
    with pytest.raises(openai.InternalServerError):
        ask(client, user("hi"), run="r1")
    ask(client, user("hi"), run="r1")
    with pytest.raises(openai.InternalServerError):
        ask(client, user("hi"), run="run with spaces&=")
    ask(client, user("hi"), run="run with spaces&=")
    for run in (None, "r1", "run with spaces&=", "nobody"):
        assert fetch_stats(server.base_url, run) == server.stats(run)
    assert fetch_stats(server.base_url)["calls"] == 2
    reset_stats(server.base_url)
    assert server.stats()["calls"] == 0 and server.stats("r1")["failed_calls"] == 0
    with pytest.raises(openai.InternalServerError):  # fault counters were reset too
        ask(client, user("hi"), run="r1")


def test_script_validation_rejects_typos() -> None:
    with pytest.raises(ScriptError, match="tool_call"):
        Script.from_dict({"turns": [{"tool_call": []}]})
    with pytest.raises(ScriptError, match="status"):
        ScriptedLLMServer({"turns": [{"fault": {"status": 200}}]})
    with pytest.raises(ScriptError, match="needs tool_calls"):
        Script.from_dict({"turns": [{"content": "x", "fault": {"malformed_tool_json": True}}]})
    with pytest.raises(ScriptError, match="turns or routes"):
        Script.from_dict({})


def test_serve_subprocess_with_port_file_stops_on_sigterm(tmp_path: Path) -> None:
    script_file = tmp_path / "script.json"
    script_file.write_text(json.dumps(SCRIPT))
    port_file = tmp_path / "llm.port"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "pipeline.testing", "serve", "--script", str(script_file)]
    process = subprocess.Popen(
        [*command, "--port-file", str(port_file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the server never wrote its port file"
            time.sleep(0.02)
        base_url = f"http://127.0.0.1:{int(port_file.read_text())}/v1"
        client = OpenAI(base_url=base_url, api_key="test", max_retries=0)
        reply = ask(client, user("stock?"), run="worker-run")
        assert reply.choices[0].message.tool_calls[0].function.name == "check_inventory"
        stats = fetch_stats(base_url, "worker-run")
        assert stats["calls"] == 1 and stats["total_tokens"] == reply.usage.total_tokens
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        assert not port_file.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
