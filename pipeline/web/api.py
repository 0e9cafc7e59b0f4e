"""The HTTP API as a Flask blueprint: ``app.register_blueprint(blueprint, url_prefix="/ravel")``.

Every route answers JSON, errors included (``{"error": code, "message": ...}``; see
:mod:`pipeline.web.errors`). Callers authenticate with a bearer API key
(:mod:`pipeline.web.keys`); its principal is the actor of everything it does, and its groups
are what approvals are matched against. Nothing in a request body can name who acts.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from pipeline import api
from pipeline.errors import PipelineError
from pipeline.store import get_db
from pipeline.store import runs as run_store
from pipeline.store.db_errors import actionable
from pipeline.views import RunView, WaitResult
from pipeline.web import openapi
from pipeline.web.auth import require
from pipeline.web.body import field, json_body, query
from pipeline.web.errors import ApiError, body, code_of, status_of, unexpected
from pipeline.web.keys import Role
from pipeline.web.pages import (
    approvals_page,
    decode_cursor,
    parse_limit,
    parse_status,
    runs_page,
)

log = logging.getLogger("ravel.web")

blueprint = Blueprint("ravel_api", __name__)

_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
_OBJECT = "a JSON object"


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(value)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _KEY.match(key):
        raise ApiError(
            400,
            "invalid_header",
            "the Idempotency-Key header must be 1 to 255 printable ASCII characters (e.g. a UUID)",
        )
    return key


@actionable
def _run_for_key(key: str) -> RunView | None:
    found = run_store.find_by_idempotency_key(get_db(), key)
    return None if found is None else api.get_run(found)


def _same_request(run: RunView, workflow: str, data: dict[str, Any], key: str) -> None:
    if run.workflow != workflow or run.input != data:
        raise ApiError(
            409,
            "idempotency_mismatch",
            f"the Idempotency-Key {key!r} was already "
            "used for a request with a different workflow or input; nothing was "
            "started. Send a new key for a new run, or the same body to get the run "
            "of the first request",
        )


def _wait_id(payload: dict[str, Any]) -> str:
    value = field(
        payload, "wait_id", str, example="the id of the wait you were shown (run.wait.id, a UUID)"
    )
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiError(
            400,
            "invalid_field",
            "the field wait_id must be the id of the wait you were shown (run.wait.id, a UUID)",
        ) from None


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3.1 document of this API (no key needed)."""
    rule = request.url_rule.rule if request.url_rule is not None else "/openapi.json"
    prefix = rule.removesuffix("/openapi.json")
    return _json(openapi.document(server=request.script_root + prefix))


@blueprint.post("/runs")
def start_run() -> Response:
    """Start a run; an Idempotency-Key returns the run its first request started."""
    caller = require(Role.OPERATOR)
    payload = json_body(required=("workflow", "input"))
    workflow = field(payload, "workflow", str, example="a workflow name such as 'refund'")
    data = field(payload, "input", dict, example=_OBJECT + ' such as {"order_id": 42}')
    key = _idempotency_key()
    if key is not None:
        existing = _run_for_key(key)
        if existing is not None:
            _same_request(existing, workflow, data, key)
            return _json(existing.to_json(), 200, {"Idempotent-Replayed": "true"})
    run_id = api.start_run(workflow, data, idempotency_key=key, actor=caller.principal)
    run = api.get_run(run_id)
    if key is not None:
        _same_request(run, workflow, data, key)  # a concurrent first request won the key
    location = url_for(".get_run", run_id=run.id)
    return _json(run.to_json(), 201, {"Location": location})


@blueprint.get("/runs")
def list_runs() -> Response:
    """Runs, newest first, filtered by status and workflow, a page at a time."""
    require(Role.VIEWER)
    args = query(("status", "workflow", "limit", "cursor"))
    before = decode_cursor(args["cursor"]) if "cursor" in args else None
    page, cursor = runs_page(
        parse_status(args.get("status")),
        args.get("workflow"),
        parse_limit(args.get("limit"), 50, 500),
        before,
    )
    return _json({"runs": [r.to_json() for r in page], "next_cursor": cursor})


@blueprint.get("/runs/<run_id>")
def get_run(run_id: str) -> Response:
    """One run as stored now."""
    require(Role.VIEWER)
    query(())
    return _json(api.get_run(run_id).to_json())


@blueprint.get("/runs/<run_id>/history")
def run_history(run_id: str) -> Response:
    """The run's audit events, oldest first."""
    require(Role.VIEWER)
    query(())
    events = api.run_history(run_id)
    return _json({"run_id": _canonical(run_id), "events": [e.to_json() for e in events]})


@blueprint.get("/approvals")
def list_approvals() -> Response:
    """Open approvals the caller's principal or groups may decide."""
    caller = require(Role.APPROVER)
    args = query(("workflow", "limit", "cursor"))
    before = decode_cursor(args["cursor"]) if "cursor" in args else None
    found, cursor = approvals_page(
        caller, args.get("workflow"), parse_limit(args.get("limit"), 50, 500), before
    )
    return _json({"approvals": [a.to_json() for a in found], "next_cursor": cursor})


def _canonical(run_id: str) -> str:
    """The run id as stored (called after Ravel accepted it, so it is a UUID)."""
    return str(uuid.UUID(run_id))


def _decided(run_id: str, result: WaitResult) -> Response:
    return _json({"run_id": _canonical(run_id), **result.to_json()})


@blueprint.post("/runs/<run_id>/approve")
def approve(run_id: str) -> Response:
    """Approve the wait the caller was shown, as the key's principal and groups."""
    caller = require(Role.APPROVER)
    payload = json_body(required=("wait_id",), optional=("data",))
    wait_id = _wait_id(payload)
    data = field(payload, "data", dict, None, example=_OBJECT + " or null")
    result = api.approve(run_id, caller.principal, data, wait_id=wait_id, groups=caller.groups)
    return _decided(run_id, result)


@blueprint.post("/runs/<run_id>/reject")
def reject(run_id: str) -> Response:
    """Reject the wait the caller was shown, as the key's principal and groups."""
    caller = require(Role.APPROVER)
    payload = json_body(required=("wait_id",), optional=("reason",))
    wait_id = _wait_id(payload)
    reason = field(payload, "reason", str, None, example="a string or null")
    result = api.reject(run_id, caller.principal, reason, wait_id=wait_id, groups=caller.groups)
    return _decided(run_id, result)


@blueprint.post("/runs/<run_id>/retry")
def retry(run_id: str) -> Response:
    """Resume a failed run at the step that failed, optionally patching its state."""
    caller = require(Role.OPERATOR)
    payload = json_body(optional=("state_patch",))
    patch = field(payload, "state_patch", dict, None, example=_OBJECT + " or null")
    return _json(api.retry_run(run_id, caller.principal, state_patch=patch).to_json())


@blueprint.post("/runs/<run_id>/cancel")
def cancel(run_id: str) -> Response:
    """Cancel a live run."""
    caller = require(Role.OPERATOR)
    payload = json_body(optional=("reason",))
    reason = field(payload, "reason", str, None, example="a string")
    run = api.cancel_run(run_id, caller.principal, reason or "cancelled by operator")
    return _json(run.to_json())


@blueprint.post("/runs/<run_id>/events/<name>")
def send_event(run_id: str, name: str) -> Response:
    """Send an event: wakes a run waiting for it, or is kept until the run waits for it."""
    caller = require(Role.OPERATOR)
    payload = json_body(optional=("payload",))
    delivered = api.send_event(run_id, name, payload.get("payload"), actor=caller.principal)
    return _json({"run_id": _canonical(run_id), "event": name, "delivered": delivered})


@blueprint.after_request
def _no_store(response: Response) -> Response:
    # Runs change from one second to the next, and their data is private.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


# -- errors: JSON, the right status, never a traceback -----------------------------------------


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return _json(body(exc.code, exc.message), exc.status, exc.headers)


@blueprint.errorhandler(PipelineError)
def _pipeline_error(exc: PipelineError) -> Response:
    status = status_of(exc)
    if status is None:
        return _unexpected(exc)
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.path, exc)
    return _json(body(code_of(exc), str(exc) or type(exc).__name__), status)


def http_error(exc: HTTPException) -> Response:
    """A werkzeug HTTP error (unknown route, wrong method, body over the app's limit) as JSON."""
    code = exc.code or 500
    name = re.sub(r"\W+", "_", (exc.name or "error").lower()).strip("_")
    headers: dict[str, str] = {}
    if isinstance(exc, MethodNotAllowed):
        allowed = ", ".join(sorted(exc.valid_methods or ()))
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
        headers["Allow"] = allowed
    elif code == 404:
        message = (
            f"no such route: {request.method} {request.path}; the routes are listed in openapi.json"
        )
    else:
        message = exc.description or exc.name or "error"
    return _json(body(name, message), code, headers)


blueprint.register_error_handler(HTTPException, http_error)


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    return _json(unexpected(request.method, request.path, exc), 500)


__all__ = ["blueprint", "http_error"]
