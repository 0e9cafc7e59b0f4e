"""JSON routes for Django, answering like the Flask blueprint (:mod:`pipeline.web.api`).

The same paths, fields, statuses and error bodies (:mod:`pipeline.web.errors`), with the
signed-in Django user as the caller instead of an API key. POSTs go through Django's CSRF
middleware: a script sends the ``csrftoken`` cookie's value as ``X-CSRFToken``. Starting a
run is left to the project's own views (in its transaction, with ``transaction.on_commit``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from pipeline import api
from pipeline.contrib.django.identity import caller_of
from pipeline.errors import PipelineError
from pipeline.views import WaitResult
from pipeline.web.api import _canonical, _wait_id
from pipeline.web.body import body_limit, field, parse_json, query_args
from pipeline.web.errors import ApiError, body, code_of, status_of, unexpected
from pipeline.web.keys import Caller, Role
from pipeline.web.pages import (
    approvals_page,
    decode_cursor,
    parse_limit,
    parse_status,
    runs_page,
)

log = logging.getLogger("ravel.web")

View = Callable[..., HttpResponse]
_OBJECT = "a JSON object"


def _answer(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = JsonResponse(value, status=status, safe=False)
    for name, text in (headers or {}).items():
        response[name] = text
    return response


def _require(request: HttpRequest, role: Role) -> Caller:
    caller = caller_of(request)
    if caller is None and not request.user.is_authenticated:
        raise ApiError(
            401, "unauthorized", "sign in first: these routes act as the signed-in Django user"
        )
    if caller is None or caller.role < role:
        held = caller.role.label if caller else "no role"
        raise ApiError(
            403,
            "forbidden",
            f"{request.user.get_username()!r} has {held}; this "
            f"needs the role {role.label} or higher (settings.RAVEL's permissions). "
            "Nothing was changed",
        )
    return caller


def _error(request: HttpRequest, exc: Exception) -> HttpResponse:
    if isinstance(exc, ApiError):
        return _answer(body(exc.code, exc.message), exc.status, exc.headers)
    if isinstance(exc, PipelineError) and (status := status_of(exc)) is not None:
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.path, exc)
        return _answer(body(code_of(exc), str(exc) or type(exc).__name__), status)
    return _answer(unexpected(request.method or "?", request.path, exc), 500)


def route(role: Role, method: str) -> Callable[[View], View]:
    """A JSON route: ``method`` only (405 otherwise), the caller at least ``role``, every
    error as JSON with its status, never a traceback, and ``Cache-Control: no-store``."""

    def wrap(view: View) -> View:
        @functools.wraps(view)
        def handle(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            try:
                if request.method != method:
                    raise ApiError(
                        405,
                        "method_not_allowed",
                        f"{request.method} is not allowed on {request.path}; allowed: {method}",
                        {"Allow": method},
                    )
                response = view(request, _require(request, role), **kwargs)
            except Exception as exc:
                response = _error(request, exc)
            response["Cache-Control"] = "no-store"
            return response

        return handle

    return wrap


def _json_body(
    request: HttpRequest, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    limit = body_limit()
    length = str(request.META.get("CONTENT_LENGTH") or "0")
    if length.isdigit() and int(length) > limit:  # checked before reading, as Django does
        raise ApiError(
            413,
            "payload_too_large",
            f"the request body is over this server's "
            f"{limit}-byte limit (RAVEL_API_MAX_BODY_BYTES); send less data",
        )
    return parse_json(request.read(limit + 1), request.content_type or "", required, optional)


def _query(request: HttpRequest, allowed: tuple[str, ...]) -> dict[str, str]:
    return query_args(dict(request.GET.lists()), allowed)


@route(Role.VIEWER, "GET")
def runs(request: HttpRequest, caller: Caller) -> HttpResponse:
    """``GET /runs``: runs, newest first, filtered, a page at a time."""
    args = _query(request, ("status", "workflow", "limit", "cursor"))
    before = decode_cursor(args["cursor"]) if "cursor" in args else None
    page, cursor = runs_page(
        parse_status(args.get("status")),
        args.get("workflow"),
        parse_limit(args.get("limit"), 50, 500),
        before,
    )
    return _answer({"runs": [r.to_json() for r in page], "next_cursor": cursor})


@route(Role.VIEWER, "GET")
def run(request: HttpRequest, caller: Caller, run_id: str) -> HttpResponse:
    """``GET /runs/<id>``: one run as stored now."""
    _query(request, ())
    return _answer(api.get_run(run_id).to_json())


@route(Role.VIEWER, "GET")
def history(request: HttpRequest, caller: Caller, run_id: str) -> HttpResponse:
    """``GET /runs/<id>/history``: the run's audit events, oldest first."""
    _query(request, ())
    events = api.run_history(run_id)
    return _answer({"run_id": _canonical(run_id), "events": [e.to_json() for e in events]})


@route(Role.APPROVER, "GET")
def approvals(request: HttpRequest, caller: Caller) -> HttpResponse:
    """``GET /approvals``: open approvals the user or one of their groups may decide."""
    args = _query(request, ("workflow", "limit", "cursor"))
    before = decode_cursor(args["cursor"]) if "cursor" in args else None
    found, cursor = approvals_page(
        caller, args.get("workflow"), parse_limit(args.get("limit"), 50, 500), before
    )
    return _answer({"approvals": [a.to_json() for a in found], "next_cursor": cursor})


def _decided(run_id: str, result: WaitResult) -> HttpResponse:
    return _answer({"run_id": _canonical(run_id), **result.to_json()})


@route(Role.APPROVER, "POST")
def approve(request: HttpRequest, caller: Caller, run_id: str) -> HttpResponse:
    """``POST /runs/<id>/approve``: ``{"wait_id", "data"}``, as the user and their groups."""
    payload = _json_body(request, ("wait_id",), ("data",))
    wait_id = _wait_id(payload)
    data = field(payload, "data", dict, None, example=_OBJECT + " or null")
    return _decided(
        run_id, api.approve(run_id, caller.principal, data, wait_id=wait_id, groups=caller.groups)
    )


@route(Role.APPROVER, "POST")
def reject(request: HttpRequest, caller: Caller, run_id: str) -> HttpResponse:
    """``POST /runs/<id>/reject``: ``{"wait_id", "reason"}``, as the user and their groups."""
    payload = _json_body(request, ("wait_id",), ("reason",))
    wait_id = _wait_id(payload)
    reason = field(payload, "reason", str, None, example="a string or null")
    return _decided(
        run_id, api.reject(run_id, caller.principal, reason, wait_id=wait_id, groups=caller.groups)
    )


@route(Role.OPERATOR, "POST")
def retry(request: HttpRequest, caller: Caller, run_id: str) -> HttpResponse:
    """``POST /runs/<id>/retry``: ``{"state_patch"}`` (optional)."""
    payload = _json_body(request, optional=("state_patch",))
    patch = field(payload, "state_patch", dict, None, example=_OBJECT + " or null")
    return _answer(api.retry_run(run_id, caller.principal, state_patch=patch).to_json())


@route(Role.OPERATOR, "POST")
def cancel(request: HttpRequest, caller: Caller, run_id: str) -> HttpResponse:
    """``POST /runs/<id>/cancel``: ``{"reason"}`` (optional)."""
    payload = _json_body(request, optional=("reason",))
    reason = field(payload, "reason", str, None, example="a string")
    return _answer(
        api.cancel_run(run_id, caller.principal, reason or "cancelled by operator").to_json()
    )


@route(Role.OPERATOR, "POST")
def send_event(request: HttpRequest, caller: Caller, run_id: str, name: str) -> HttpResponse:
    """``POST /runs/<id>/events/<name>``: ``{"payload"}`` (optional)."""
    payload = _json_body(request, optional=("payload",))
    delivered = api.send_event(run_id, name, payload.get("payload"), actor=caller.principal)
    return _answer({"run_id": _canonical(run_id), "event": name, "delivered": delivered})


__all__ = [
    "approvals",
    "approve",
    "cancel",
    "history",
    "reject",
    "retry",
    "route",
    "run",
    "runs",
    "send_event",
]
