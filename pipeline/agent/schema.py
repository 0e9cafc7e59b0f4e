"""JSON schemas from Python type hints, the checks made against them, and docstring ``Args``.

Only the schema forms :func:`type_schema` produces are checked: enough to refuse unknown,
missing and mistyped arguments before a tool runs, without a JSON Schema library.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pipeline.errors import ConfigurationError, ToolArgumentsError

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?)"
    r":\s*$"
)
_ARG = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


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


_SIMPLE: dict[Any, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}


def type_schema(hint: Any, where: str) -> dict[str, Any]:
    """The JSON schema of a parameter's type hint (``where`` names it in errors).

    Raises:
        ConfigurationError: the type has no JSON form.
    """
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if origin is Annotated:
        schema = type_schema(args[0], where)
        notes = [a for a in args[1:] if isinstance(a, str)]
        return {**schema, "description": notes[0]} if notes else schema
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint is None or hint is type(None):
        return {"type": "null"}
    if origin in (Union, types.UnionType):
        options = [type_schema(a, where) for a in args]
        return {"anyOf": options}
    if origin is Literal:
        kinds = {_SIMPLE.get(type(a)) for a in args}
        return {"enum": list(args), **({"type": kinds.pop()} if len(kinds) == 1 else {})}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}
    if hint in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset, Sequence):
        item = args[0] if args and args[0] is not Ellipsis else Any
        return {"type": "array", "items": type_schema(item, where)}
    if hint is dict or origin in (dict, Mapping):
        return {"type": "object"}
    raise ConfigurationError(
        f"{where}: type {hint!r} has no JSON schema; use str, int, float, bool, a Literal, an "
        "Enum, list[...], dict, or X | None"
    )


def json_type(value: Any) -> str:
    """The JSON type name of a decoded JSON value."""
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


def check_value(value: Any, schema: Mapping[str, Any], where: str) -> Any:
    """``value`` if it fits the (Ravel-made) schema, else :class:`ToolArgumentsError`."""
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                return check_value(value, option, where)
            except ToolArgumentsError:
                continue
        kinds = " or ".join(o.get("type", "any") for o in schema["anyOf"])
        raise ToolArgumentsError(f"argument {where} must be {kinds}, got {json_type(value)}")
    kind = schema.get("type")
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)  # 5.0 from a model means 5
    actual = json_type(value)
    if kind is not None and actual != kind and not (kind == "number" and actual == "integer"):
        raise ToolArgumentsError(f"argument {where} must be {_article(kind)}, got {actual}")
    if "enum" in schema and value not in schema["enum"]:
        raise ToolArgumentsError(
            f"argument {where} must be one of {json.dumps(schema['enum'])}, got {value!r:.80}"
        )
    if kind == "array" and "items" in schema:
        return [check_value(v, schema["items"], f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
