"""``@tool``: the schema the model sees, and arguments validated before anything runs."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Annotated, Any, Literal

import pytest

from pipeline import Agent, Approval, tool
from pipeline.agent import Tool
from pipeline.agent.schema import parse_docstring
from pipeline.errors import ConfigurationError, ToolArgumentsError


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


@tool(effect="idempotent")
def create_ticket(
    title: str,
    priority: Priority,
    labels: list[str],
    estimate: float | None = None,
    size: Literal["S", "M", "L"] = "M",
    meta: dict[str, Any] | None = None,
    due_days: Annotated[int, "days until due"] = 7,
    idempotency_key: str = "",
) -> dict[str, Any]:
    """Open a ticket in the tracker.

    Use it for bugs only.

    Args:
        title: a short summary,
            on one line.
        priority (Priority): how urgent.
        labels: tags to add.
        estimate: hours, if known.

    Returns:
        The ticket.
    """
    return {"title": title, "priority": priority, "key": idempotency_key, "due": due_days}


def test_the_schema_comes_from_hints_and_the_docstring():
    assert isinstance(create_ticket, Tool)
    fn = create_ticket.schema()["function"]
    assert fn["name"] == "create_ticket"
    assert fn["description"] == "Open a ticket in the tracker. Use it for bugs only."
    params = fn["parameters"]
    assert params["additionalProperties"] is False
    assert params["required"] == ["title", "priority", "labels"]
    props = params["properties"]
    assert "idempotency_key" not in props  # Ravel fills it in; the model never sees it
    assert props["title"] == {"type": "string", "description": "a short summary, on one line."}
    assert props["priority"] == {"enum": ["low", "high"], "description": "how urgent."}
    assert props["labels"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "tags to add.",
    }
    assert props["estimate"]["anyOf"] == [{"type": "number"}, {"type": "null"}]
    assert props["size"] == {"enum": ["S", "M", "L"], "type": "string"}
    assert props["meta"]["anyOf"] == [{"type": "object"}, {"type": "null"}]
    assert props["due_days"] == {"type": "integer", "description": "days until due"}
    assert create_ticket.effect == "idempotent" and create_ticket.takes_key


def test_invoke_passes_the_key_and_converts_enums():
    args = create_ticket.parse_arguments('{"title": "t", "priority": "high", "labels": []}')
    result = create_ticket.invoke(args, "key-1")
    assert result == {"title": "t", "priority": Priority.HIGH, "key": "key-1", "due": 7}
    assert create_ticket("x", Priority.LOW, [])["title"] == "x"  # still a plain function


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"title": "t", "priority": "high"', "are not valid JSON"),
        ("[]", "must be a JSON object, not array"),
        (
            '{"title": "t", "priority": "high", "labels": [], "admin": true}',
            "has no parameter 'admin'",
        ),
        ('{"title": "t", "labels": []}', "missing required argument 'priority'"),
        ('{"title": 5, "priority": "high", "labels": []}', "create_ticket.title must be a string"),
        ('{"title": "t", "priority": "urgent", "labels": []}', 'must be one of ["low", "high"]'),
        ('{"title": "t", "priority": "low", "labels": [1]}', "labels[0] must be a string"),
        (
            '{"title": "t", "priority": "low", "labels": [], "due_days": true}',
            "due_days must be an integer, got boolean",
        ),
        (
            '{"title": "t", "priority": "low", "labels": [], "due_days": 1.5}',
            "due_days must be an integer, got number",
        ),
        (
            '{"title": "t", "priority": "low", "labels": [], "estimate": "2h"}',
            "estimate must be number or null",
        ),
        (
            '{"title": "t", "priority": "low", "labels": [], "idempotency_key": "mine"}',
            "has no parameter 'idempotency_key'",
        ),
    ],
)
def test_bad_arguments_are_refused(raw, message):
    with pytest.raises(ToolArgumentsError) as caught:
        create_ticket.parse_arguments(raw)
    assert message in str(caught.value)


def test_good_arguments_pass_and_integral_floats_become_ints():
    args = create_ticket.parse_arguments(
        '{"title": "t", "priority": "low", "labels": ["a"], "estimate": 2, "due_days": 3.0,'
        ' "meta": null}'
    )
    assert args == {
        "title": "t",
        "priority": "low",
        "labels": ["a"],
        "estimate": 2,
        "due_days": 3,
        "meta": None,
    }
    assert isinstance(args["due_days"], int)


def test_empty_arguments_mean_no_arguments():
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    assert ping.parse_arguments("") == {}
    assert ping.schema()["function"]["parameters"]["properties"] == {}


def test_defaults_for_effect_and_approval():
    @tool
    def read() -> None:
        """Read."""

    gate = Approval(approvers=["finance"], timeout=timedelta(days=3))

    @tool(approval=gate)
    def buy(amount: float) -> None:
        """Buy."""

    assert read.effect == "read" and read.approval is None
    assert buy.effect == "write" and buy.approval is gate  # gated: assumed to change something


def test_bad_declarations_fail_at_import_time():
    with pytest.raises(ConfigurationError, match="no JSON schema"):

        @tool
        def f(when: timedelta) -> None:
            """F."""

    with pytest.raises(ConfigurationError, match="plain named parameter"):

        @tool
        def g(*items: str) -> None:
            """G."""

    with pytest.raises(ConfigurationError, match="effect"):
        tool(effect="sometimes")(lambda: None)  # type: ignore[call-overload]

    with pytest.raises(ConfigurationError, match="approvers"):
        Approval(approvers=[])

    with pytest.raises(ConfigurationError, match="two tools named"):
        Agent("dupes", "x", [create_ticket, create_ticket])


def test_plain_functions_become_read_only_tools():
    def lookup(sku: str) -> int:
        """Find a SKU."""
        return 1

    agent = Agent("plain_tools_agent", "x", [lookup])
    assert agent.tools["lookup"].effect == "read"
    assert agent.schemas[0]["function"]["parameters"]["required"] == ["sku"]
    assert set(agent.workflow.steps) == {"reason", "act", "verify"}
    assert agent.workflow.start_step == "reason"


def test_parse_docstring():
    summary, args = parse_docstring(
        "Do it.\n\nArgs:\n    a: first\n        more.\n    b (int): second.\n\nRaises:\n"
        "    ValueError: never."
    )
    assert summary == "Do it."
    assert args == {"a": "first more.", "b": "second."}
