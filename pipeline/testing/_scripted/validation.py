"""Validation of JSON-compatible scripts into :mod:`~pipeline.testing._scripted.replies` objects."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.testing._scripted.replies import Fault, Reply, ToolCall

_REPLY_KEYS = frozenset(
    {"content", "tool_calls", "finish_reason", "usage", "refusal", "fault", "fault_times"}
)
_FAULT_KEYS = frozenset(
    {
        "status",
        "retry_after",
        "message",
        "code",
        "type",
        "should_retry",
        "hang",
        "malformed_tool_json",
        "huge",
    }
)
_STATUS_ONLY_KEYS = ("retry_after", "message", "code", "type", "should_retry")
_MAX_HUGE_BYTES = 100 * 1024 * 1024


class ScriptError(ValueError):
    """The script is malformed; the message names the offending entry."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ScriptError(message)


def _reject_unknown(data: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    _require(not unknown, f"{where}: unknown keys {unknown}; expected some of {sorted(known)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_turns(data: object, where: str, *, allow_empty: bool = False) -> tuple[Reply, ...]:
    _require(isinstance(data, list), f"{where} must be a list")
    assert isinstance(data, list)
    _require(allow_empty or bool(data), f"{where} must not be empty")
    return tuple(_parse_reply(reply, f"{where}[{index}]") for index, reply in enumerate(data))


def _parse_reply(data: object, where: str) -> Reply:
    _require(isinstance(data, Mapping), f"{where} must be an object")
    assert isinstance(data, Mapping)
    _reject_unknown(data, _REPLY_KEYS, where)
    tool_calls = _parse_tool_calls(data.get("tool_calls") or [], f"{where}.tool_calls")
    content = data.get("content", None if tool_calls else "")
    _require(content is None or isinstance(content, str), f"{where}.content must be str or null")
    finish_reason = data.get("finish_reason", "tool_calls" if tool_calls else "stop")
    _require(
        isinstance(finish_reason, str) and bool(finish_reason),
        f"{where}.finish_reason must be a non-empty string",
    )
    refusal = data.get("refusal")
    _require(refusal is None or isinstance(refusal, str), f"{where}.refusal must be str or null")
    usage = data.get("usage") or {}
    _require(isinstance(usage, Mapping), f"{where}.usage must be an object")
    _reject_unknown(usage, frozenset({"prompt_tokens", "completion_tokens"}), f"{where}.usage")
    for key, value in usage.items():
        _require(_is_int(value) and value >= 0, f"{where}.usage.{key} must be an int >= 0")
    fault = None if data.get("fault") is None else _parse_fault(data["fault"], f"{where}.fault")
    fault_times = data.get("fault_times")
    if fault_times is not None:
        _require(fault is not None, f"{where}.fault_times needs a fault")
        _require(_is_int(fault_times) and fault_times >= 0, f"{where}.fault_times must be >= 0")
    if fault is not None and fault.malformed_tool_json:
        _require(bool(tool_calls), f"{where}.fault.malformed_tool_json needs tool_calls")
    return Reply(
        content=content,
        tool_calls=tool_calls,
        finish_reason=finish_reason,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        refusal=refusal,
        fault=fault,
        fault_times=fault_times,
    )


def _parse_tool_calls(data: object, where: str) -> tuple[ToolCall, ...]:
    _require(isinstance(data, list), f"{where} must be a list")
    assert isinstance(data, list)
    calls = []
    for index, call in enumerate(data):
        at = f"{where}[{index}]"
        _require(isinstance(call, Mapping), f"{at} must be an object")
        _reject_unknown(call, frozenset({"name", "arguments"}), at)
        name = call.get("name")
        _require(isinstance(name, str) and bool(name), f"{at}.name must be a non-empty string")
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            try:
                arguments = json.dumps(arguments)
            except (TypeError, ValueError) as exc:
                raise ScriptError(f"{at}.arguments is not JSON-serialisable: {exc}") from exc
        calls.append(ToolCall(name, arguments))
    return tuple(calls)


def _parse_fault(data: object, where: str) -> Fault:
    _require(isinstance(data, Mapping), f"{where} must be an object")
    assert isinstance(data, Mapping)
    _reject_unknown(data, _FAULT_KEYS, where)
    status = data.get("status")
    if status is None:
        extra = [key for key in _STATUS_ONLY_KEYS if key in data]
        _require(not extra, f"{where}: {extra} only apply with a status")
    else:
        _require(_is_int(status) and 400 <= status <= 599, f"{where}.status must be 400-599")
        _require(
            not data.get("malformed_tool_json") and data.get("huge") is None,
            f"{where}: a status fault sends no reply to malform or pad",
        )
    retry_after = data.get("retry_after")
    _require(
        retry_after is None or (_is_number(retry_after) and retry_after >= 0),
        f"{where}.retry_after must be a number >= 0",
    )
    for key in ("message", "type"):
        _require(isinstance(data.get(key, ""), str), f"{where}.{key} must be a string")
    _require(data.get("code") is None or isinstance(data["code"], str), f"{where}.code must be str")
    should_retry = data.get("should_retry")
    _require(should_retry is None or isinstance(should_retry, bool), f"{where}.should_retry: bool")
    hang = data.get("hang", 0)
    _require(_is_number(hang) and hang >= 0, f"{where}.hang must be a number of seconds >= 0")
    malformed = data.get("malformed_tool_json", False)
    _require(isinstance(malformed, bool), f"{where}.malformed_tool_json must be a boolean")
    huge = data.get("huge")
    _require(
        huge is None or (_is_int(huge) and 0 < huge <= _MAX_HUGE_BYTES),
        f"{where}.huge must be an int of bytes in 1..{_MAX_HUGE_BYTES}",
    )
    _require(
        status is not None or hang > 0 or malformed or huge is not None,
        f"{where} does nothing: give status, hang, malformed_tool_json or huge",
    )
    return Fault(
        status=status,
        retry_after=None if retry_after is None else float(retry_after),
        message=data.get("message"),
        code=data.get("code"),
        type=data.get("type"),
        should_retry=should_retry,
        hang=float(hang),
        malformed_tool_json=malformed,
        huge=huge,
    )
