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
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints, overload

from pipeline.errors import ConfigurationError, ToolArgumentsError

Effect = Literal["read", "idempotent", "write"]
EFFECTS: tuple[str, ...] = ("read", "idempotent", "write")
KEY_PARAM = "idempotency_key"
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?)"
                      r":\s*$")
_ARG = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


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
        if isinstance(self.approvers, str) or not self.approvers or not all(
            isinstance(a, str) and a for a in self.approvers
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
                f"the arguments of {self.name!r} must be a JSON object, not {_json_type(args)}"
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
                f"{self.name!r} is missing required argument {', '.join(map(repr, missing))}"
            )
        return {k: _check(v, props[k], f"{self.name}.{k}") for k, v in args.items()}

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
    *, name: str | None = None, description: str | None = None, effect: Effect | None = None,
    approval: Approval | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
    description: str | None = None, effect: Effect | None = None,
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
        return Tool(f, tool_name, description or summary or tool_name, parameters, chosen,
                    approval, takes_key, enums)

    return make(fn) if fn is not None else make


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and its ``Args:`` entries."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    base: int | None = None  # indent of the entries of the Args section
    for line in doc.splitlines():
        indent = len(line) - len(line.lstrip())
        header = _SECTION.match(line.strip()) if indent == 0 else None
        if header:
            section, current, base = header.group(1), None, None
            continue
        if section is None:
            summary.append(line)
            continue
        if section not in ("Args", "Arguments", "Parameters") or not line.strip():
            continue
        base = indent if base is None else base
        entry = _ARG.match(line.strip()) if indent <= base else None
        if entry:
            current = entry.group(1).lstrip("*")
            args[current] = entry.group(2).strip()
        elif current is not None:  # a continuation line of the current entry
            args[current] = f"{args[current]} {line.strip()}".strip()
    return " ".join(" ".join(summary).split()), args


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
        schema = _schema(hint, f"tool {tool_name!r}: parameter {p.name!r}")
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            enums[p.name] = hint
        if p.name in docs and docs[p.name]:
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


_SIMPLE: dict[Any, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}


def _schema(hint: Any, where: str) -> dict[str, Any]:  # noqa: C901 - one branch per type form
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if origin is Annotated:
        schema = _schema(args[0], where)
        notes = [a for a in args[1:] if isinstance(a, str)]
        return {**schema, "description": notes[0]} if notes else schema
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint is None or hint is type(None):
        return {"type": "null"}
    if origin in (Union, types.UnionType):
        options = [_schema(a, where) for a in args]
        return {"anyOf": options}
    if origin is Literal:
        kinds = {_SIMPLE.get(type(a)) for a in args}
        return {"enum": list(args), **({"type": kinds.pop()} if len(kinds) == 1 else {})}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}
    if hint in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset, Sequence):
        item = args[0] if args and args[0] is not Ellipsis else Any
        return {"type": "array", "items": _schema(item, where)}
    if hint is dict or origin in (dict, Mapping):
        return {"type": "object"}
    raise ConfigurationError(
        f"{where}: type {hint!r} has no JSON schema; use str, int, float, bool, a Literal, an "
        "Enum, list[...], dict, or X | None"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _check(value: Any, schema: Mapping[str, Any], where: str) -> Any:  # noqa: C901
    """``value`` if it fits the (Ravel-made) schema, else :class:`ToolArgumentsError`."""
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                return _check(value, option, where)
            except ToolArgumentsError:
                continue
        kinds = " or ".join(o.get("type", "any") for o in schema["anyOf"])
        raise ToolArgumentsError(f"argument {where} must be {kinds}, got {_json_type(value)}")
    kind = schema.get("type")
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)  # 5.0 from a model means 5
    actual = _json_type(value)
    if kind is not None and actual != kind and not (kind == "number" and actual == "integer"):
        raise ToolArgumentsError(f"argument {where} must be {_article(kind)}, got {actual}")
    if "enum" in schema and value not in schema["enum"]:
        raise ToolArgumentsError(
            f"argument {where} must be one of {json.dumps(schema['enum'])}, got {value!r:.80}"
        )
    if kind == "array" and "items" in schema:
        return [_check(v, schema["items"], f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
