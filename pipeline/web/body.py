"""Reading a request: the JSON body (size checked before reading, content type, syntax,
known fields) and query parameters. Every refusal is an :class:`ApiError` with a message
that says what to send instead; nothing is changed by a refused request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from typing import Any

from flask import current_app, request

from pipeline.errors import ConfigurationError
from pipeline.jsonutil import MAX_DEPTH
from pipeline.settings import get_settings
from pipeline.web.errors import ApiError

#: The smallest default body limit: a run's input (RAVEL_MAX_INPUT_BYTES) is checked as compact
#: JSON, so a body may be larger (indentation, the fields around it).
MIN_BODY_BYTES = 1024 * 1024


def max_body_bytes() -> int:
    """``RAVEL_API_MAX_BODY_BYTES`` (the app's setting, else the environment's); by default
    1 MiB or four times ``RAVEL_MAX_INPUT_BYTES``, whichever is larger."""
    return body_limit(current_app.config.get("RAVEL_API_MAX_BODY_BYTES"))


def body_limit(configured: object = None) -> int:
    """:func:`max_body_bytes` for a framework's own setting ``configured`` (None: unset)."""
    text = str(configured or os.environ.get("RAVEL_API_MAX_BODY_BYTES", "")).strip()
    if text:
        try:
            return max(1024, int(text))
        except ValueError:
            raise ConfigurationError(
                f"RAVEL_API_MAX_BODY_BYTES={text!r} is not a whole "
                "number of bytes; set e.g. 1048576"
            ) from None
    return max(MIN_BODY_BYTES, 4 * get_settings().max_input_bytes)


def _raw(limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"the request body is {length} bytes, over "
            f"this server's {limit}-byte limit (RAVEL_API_MAX_BODY_BYTES); send less "
            "data, and store large data elsewhere with a reference in the input",
        )
    data = request.stream.read(limit + 1)  # a body without Content-Length is cut here
    if len(data) > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"the request body is over this server's "
            f"{limit}-byte limit (RAVEL_API_MAX_BODY_BYTES); send less data",
        )
    return data


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_body(required: Collection[str] = (), optional: Collection[str] = ()) -> dict[str, Any]:
    """The request's JSON object, with exactly the fields named (an empty body is ``{}``).

    Raises:
        ApiError: 413 too large, 415 not JSON, 400 malformed, not an object, unknown or
            missing fields; 422 nested deeper than Ravel accepts.
    """
    return parse_json(_raw(max_body_bytes()), request.mimetype, required, optional)


def parse_json(
    data: bytes, mimetype: str, required: Collection[str] = (), optional: Collection[str] = ()
) -> dict[str, Any]:
    """:func:`json_body` for a body already read (within the size limit) by any framework."""
    value: Any = {}
    if data.strip():
        if not _is_json(mimetype):
            sent = mimetype or "no Content-Type"
            raise ApiError(
                415,
                "unsupported_media_type",
                f"the body must be JSON, sent with "
                f"`Content-Type: application/json` (this request sent {sent})",
            )
        try:
            value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except RecursionError:
            raise ApiError(
                422,
                "invalid_input",
                f"the request body is nested more than {MAX_DEPTH} levels deep; flatten it",
            ) from None
        except UnicodeDecodeError:
            raise ApiError(
                400,
                "invalid_json",
                "the request body is not UTF-8 text; send JSON encoded as UTF-8",
            ) from None
        except ValueError as exc:
            raise ApiError(
                400,
                "invalid_json",
                f"the request body is not valid JSON ({exc}); "
                'send a JSON object such as {"input": {"order_id": 42}}',
            ) from None
    if not isinstance(value, dict):
        raise ApiError(
            400, "invalid_body", f"the request body must be a JSON object, not {_kind(value)}"
        )
    _check_fields(value, required, optional, "the request body")
    return value


def _check_fields(
    given: Collection[str], required: Collection[str], optional: Collection[str], where: str
) -> None:
    allowed = sorted({*required, *optional})
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        names = ", ".join(repr(u[:100]) for u in unknown[:10])
        accepted = ", ".join(allowed) or "none"
        raise ApiError(
            400,
            "unknown_field",
            f"{where} has unknown fields {names}; the fields accepted here are: {accepted}",
        )
    missing = [name for name in required if name not in given]
    if missing:
        raise ApiError(
            400,
            "missing_field",
            f"{where} lacks the required field"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
        )


def query(allowed: Collection[str]) -> dict[str, str]:
    """The query parameters, each given at most once and all of them known (400 otherwise)."""
    return query_args({name: request.args.getlist(name) for name in request.args}, allowed)


def query_args(args: Mapping[str, list[str]], allowed: Collection[str]) -> dict[str, str]:
    """:func:`query` for any framework: ``args`` maps each parameter to the values given."""
    _check_fields(list(args), (), allowed, "the query string")
    for name, values in args.items():
        if len(values) > 1:
            raise ApiError(
                400,
                "invalid_query",
                f"the query parameter {name} is given more than once; give it once",
            )
    return {name: values[0] for name, values in args.items()}


def _kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def field(body: Mapping[str, Any], name: str, *kinds: type | None, example: str) -> Any:
    """``body[name]`` (None when absent) if it is of one of ``kinds``; 400 naming the field
    and an example otherwise. ``None`` in ``kinds`` allows null."""
    value = body.get(name)
    if name not in body and None in kinds:
        return None
    allowed = tuple(k for k in kinds if k is not None)
    ok = (value is None and None in kinds) or (
        isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    )
    if not ok:
        raise ApiError(
            400, "invalid_field", f"the field {name} must be {example}, not {_kind(value)}"
        )
    return value


__all__ = [
    "body_limit",
    "field",
    "json_body",
    "max_body_bytes",
    "parse_json",
    "query",
    "query_args",
]
