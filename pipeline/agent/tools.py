"""``@tool``: a Python function the model may call, with the JSON schema it sees.

A tool's parameters come from its type hints, their descriptions from the ``Args:`` section of
its Google-style docstring. The model's arguments are checked against that schema before the
tool runs: unknown or missing parameters and wrong basic types are refused, so a tool never
runs on arguments its signature does not accept.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, get_type_hints, overload

from pipeline.agent.schema import check_value, json_type, parse_docstring, type_schema
from pipeline.errors import ConfigurationError, ToolArgumentsError

Effect = Literal["read", "idempotent", "write"]
EFFECTS: tuple[str, ...] = ("read", "idempotent", "write")
KEY_PARAM = "idempotency_key"
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Approval:
    """An approval gate on a tool: the run parks until one of ``approvers`` decides.

    Attributes:
        approvers: principals who may approve or reject the proposed call.
        timeout: how long the approval stays open; None waits forever.
        on_timeout: ``"reject"`` tells the model the call expired unapproved (as a rejection);
            ``"fail"`` fails the run.
    """

    approvers: list[str]
    timeout: timedelta | None = None
    on_timeout: Literal["reject", "fail"] = "reject"

    def __post_init__(self) -> None:
        if (
            isinstance(self.approvers, str)
            or not self.approvers
            or not all(isinstance(a, str) and a for a in self.approvers)
        ):
            raise ConfigurationError("Approval needs approvers: a non-empty list of names")
        if self.on_timeout not in ("reject", "fail"):
            raise ConfigurationError("Approval on_timeout must be 'reject' or 'fail'")


@dataclass(frozen=True)
class Tool:
    """A function the model may call. Calling the object calls the function directly.

    Attributes:
        fn: the function.
        name: the name the model calls it by.
        description: what the model reads about it.
        parameters: the JSON schema of its arguments (``idempotency_key`` left out).
        effect: ``read`` (safe to repeat), ``idempotent`` (repeatable with the same key) or
            ``write`` (not safe to repeat: an unknown outcome parks the run for an operator).
        approval: the approval gate, or None.
        takes_key: whether the function has an ``idempotency_key`` parameter to receive.
    """

    fn: Callable[..., Any]
    name: str
    description: str
    parameters: dict[str, Any]
    effect: Effect = "read"
    approval: Approval | None = None
    takes_key: bool = False
    enums: dict[str, type[enum.Enum]] = field(default_factory=dict, repr=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function itself (handy in unit tests of the tool)."""
        return self.fn(*args, **kwargs)

    def schema(self) -> dict[str, Any]:
        """The Chat Completions tool definition."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def parse_arguments(self, raw: Any) -> dict[str, Any]:
        """Decode and validate the model's arguments (a JSON string, or an object).

        Raises:
            ToolArgumentsError: the text is not a JSON object, or does not fit the signature.
        """
        if isinstance(raw, str):
            try:
                raw = json.loads(raw) if raw.strip() else {}
            except ValueError as exc:
                raise ToolArgumentsError(
                    f"the arguments of {self.name!r} are not valid JSON ({exc})"
                ) from None
        return self.validate(raw)

    def validate(self, args: Any) -> dict[str, Any]:
        """Check ``args`` against the schema; return them (integral floats made ints).

        Raises:
            ToolArgumentsError: an unknown, missing or mistyped argument.
        """
        if not isinstance(args, dict):
            raise ToolArgumentsError(
                f"the arguments of {self.name!r} must be a JSON object, not {json_type(args)}"
            )
        props: dict[str, Any] = self.parameters["properties"]
        unknown = sorted(set(args) - set(props))
        if unknown:
            raise ToolArgumentsError(
                f"{self.name!r} has no parameter {', '.join(map(repr, unknown))}; its "
                f"parameters are: {', '.join(props) or 'none'}"
            )
        missing = [p for p in self.parameters["required"] if p not in args]
        if missing:
            raise ToolArgumentsError(
                f"{self.name!r} is missing required argument{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(repr, missing))}"
            )
        return {k: check_value(v, props[k], f"{self.name}.{k}") for k, v in args.items()}

    def invoke(self, args: dict[str, Any], idempotency_key: str) -> Any:
        """Run the tool with validated ``args`` (and the key, if it takes one)."""
        call = {k: self.enums[k](v) if k in self.enums else v for k, v in args.items()}
        if self.takes_key:
            call[KEY_PARAM] = idempotency_key
        return self.fn(**call)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    effect: Effect | None = None,
    approval: Approval | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    effect: Effect | None = None,
    approval: Approval | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Declare a tool: ``@tool``, ``@tool(effect="idempotent")``, ``@tool(approval=...)``.

    Args:
        fn: the function (when used as ``@tool`` without parentheses).
        name: the name the model sees; default the function's name.
        description: what the model reads; default the docstring's text before its sections.
        effect: ``read`` (default without approval), ``idempotent``, or ``write`` (default
            with an approval: a gated tool is assumed to change something).
        approval: park the run for an approval before each call.

    Returns:
        A :class:`Tool` (or a decorator making one).
    """

    def make(f: Callable[..., Any]) -> Tool:
        chosen = effect or ("write" if approval is not None else "read")
        if chosen not in EFFECTS:
            raise ConfigurationError(f"tool effect {chosen!r} must be one of {EFFECTS}")
        tool_name = name or f.__name__
        if not _TOOL_NAME.match(tool_name):
            raise ConfigurationError(
                f"tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-'"
            )
        summary, arg_docs = parse_docstring(inspect.getdoc(f) or "")
        parameters, takes_key, enums = _parameters(f, tool_name, arg_docs)
        return Tool(
            f,
            tool_name,
            description or summary or tool_name,
            parameters,
            chosen,
            approval,
            takes_key,
            enums,
        )

    return make(fn) if fn is not None else make


def _parameters(
    fn: Callable[..., Any], tool_name: str, docs: Mapping[str, str]
) -> tuple[dict[str, Any], bool, dict[str, type[enum.Enum]]]:
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as exc:  # an unresolvable annotation names the tool, not a NameError
        raise ConfigurationError(f"tool {tool_name!r}: cannot read its type hints ({exc})") from exc
    props: dict[str, Any] = {}
    required: list[str] = []
    enums: dict[str, type[enum.Enum]] = {}
    takes_key = False
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise ConfigurationError(
                f"tool {tool_name!r}: parameter {p.name!r} must be a plain named parameter "
                "(no *args, **kwargs or positional-only): the model passes arguments by name"
            )
        if p.name == KEY_PARAM:
            takes_key = True  # filled in by Ravel, never by the model
            continue
        hint = hints.get(p.name, Any)
        schema = type_schema(hint, f"tool {tool_name!r}: parameter {p.name!r}")
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            enums[p.name] = hint
        if docs.get(p.name):
            schema["description"] = docs[p.name]
        if p.default is p.empty:
            required.append(p.name)
        props[p.name] = schema
    parameters = {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }
    return parameters, takes_key, enums
