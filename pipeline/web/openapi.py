"""The OpenAPI 3.1 document of the HTTP API, served at ``openapi.json``.

A test checks it against the blueprint's routes (every route documented, every documented
route served, same methods) and the schemas against the views' JSON form.
"""

from __future__ import annotations

from typing import Any

from pipeline.status import RunStatus

JSON = "application/json"
_ANY: dict[str, Any] = {"description": "any JSON value"}
_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(
    properties: dict[str, Any], required: list[str] | None = None, description: str = ""
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }
    if description:
        found["description"] = description
    return found


WAIT = _object(
    {
        "id": {
            "type": "string",
            "format": "uuid",
            "description": "send it as wait_id when deciding: a stale screen then never "
            "decides a newer wait",
        },
        "kind": {"type": "string", "enum": ["approval", "event"]},
        "prompt": _nullable({"type": "string"}),
        "approvers": {
            "type": "array",
            "items": {"type": "string"},
            "description": "principals who may decide: people (alice, user:alice) and "
            "groups (group:finance)",
        },
        "expires_at": _nullable(_TIME),
        "name": _nullable({"type": "string", "description": "the event's name (event waits)"}),
        "data": _nullable(
            {
                "type": "object",
                "description": "what the approver is shown, e.g. the proposed tool call",
            }
        ),
        "then": _nullable({"type": "string", "description": "the step that runs next"}),
        "created_at": _nullable(_TIME),
    },
    description="The open wait of a parked run.",
)

RUN = _object(
    {
        "id": {"type": "string", "format": "uuid"},
        "workflow": {"type": "string"},
        "workflow_version": {"type": "integer"},
        "status": {"type": "string", "enum": [s.value for s in RunStatus]},
        "step": {"type": "string", "description": "the step to run next, or running now"},
        "seq": {"type": "integer", "description": "steps committed so far"},
        "attempt": {"type": "integer", "description": "attempts of the current step"},
        "state": {"type": "object"},
        "input": {"type": "object"},
        "wait": _nullable(_ref("Wait")),
        "result": _ANY,
        "error": _nullable({"type": "string"}),
        "tokens": {"type": "integer"},
        "cost_usd": {"type": "number"},
        "created_at": _TIME,
        "updated_at": _TIME,
        "forked_from": _nullable(
            {"type": "string", "format": "uuid", "description": "the run this one was forked from"}
        ),
        "forked_from_seq": _nullable(
            {"type": "integer", "description": "the step (seq) of that run it starts at"}
        ),
    },
    description="A run as stored now.",
)

DECISION = _object(
    {
        "run_id": {"type": "string", "format": "uuid"},
        "kind": {"type": "string", "enum": ["approval"]},
        "decision": {"type": "string", "enum": ["approved", "rejected"]},
        "actor": _nullable(
            {
                "type": "string",
                "description": "who decided: the key's principal "
                "(the first decider's, on a repeat)",
            }
        ),
        "data": _ANY | {"description": "the approval's data or the rejection's reason"},
        "at": _nullable(_TIME),
        "wait_id": _nullable({"type": "string", "format": "uuid"}),
        "principal": _nullable(
            {"type": "string", "description": "the approvers entry the decision was accepted under"}
        ),
    }
)

HISTORY_EVENT = _object(
    {
        "idx": {"type": "integer", "description": "position in the run's hash-chained audit log"},
        "kind": {
            "type": "string",
            "description": "run.started, step.succeeded, wait.approved, "
            "wait.refused, run.cancelled, ...",
        },
        "actor": {"type": "string"},
        "at": _TIME,
        "step": _nullable({"type": "string"}),
        "data": {"type": "object"},
    }
)

ERROR = _object(
    {
        "error": {
            "type": "string",
            "description": "a stable code: invalid_json, unknown_field, "
            "missing_field, invalid_field, invalid_query, "
            "invalid_cursor, invalid_header, unauthorized, "
            "forbidden, not_authorized, run_not_found, "
            "not_found, method_not_allowed, "
            "idempotency_mismatch, wait_not_found, "
            "not_waiting, invalid_transition, "
            "wait_already_decided, wait_expired, "
            "payload_too_large, unsupported_media_type, "
            "invalid_input, value_too_large, "
            "workflow_not_found, internal_error, "
            "store_unavailable, database_not_migrated, "
            "configuration_error, keys_misconfigured",
        },
        "message": {"type": "string", "description": "what went wrong and what to do, one line"},
        "error_id": {"type": "string", "description": "500 only: find it in the server log"},
    },
    required=["error", "message"],
)

SCHEMAS: dict[str, Any] = {
    "Run": RUN,
    "Wait": WAIT,
    "Decision": DECISION,
    "HistoryEvent": HISTORY_EVENT,
    "Error": ERROR,
    "RunPage": _object(
        {
            "runs": {"type": "array", "items": _ref("Run")},
            "next_cursor": _nullable({"type": "string"}),
        }
    ),
    "RunHistory": _object(
        {
            "run_id": {"type": "string", "format": "uuid"},
            "events": {"type": "array", "items": _ref("HistoryEvent")},
        }
    ),
    "OpenApproval": _object(
        {
            "run_id": {"type": "string", "format": "uuid"},
            "workflow": {"type": "string"},
            "step": {"type": "string"},
            "as": {"type": "string", "description": "the approvers entry the caller matches"},
            "wait": _ref("Wait"),
        }
    ),
    "ApprovalPage": _object(
        {
            "approvals": {"type": "array", "items": _ref("OpenApproval")},
            "next_cursor": _nullable({"type": "string"}),
        }
    ),
    "EventResult": _object(
        {
            "run_id": {"type": "string", "format": "uuid"},
            "event": {"type": "string"},
            "delivered": {
                "type": "boolean",
                "description": "true: a waiting run was woken; false: kept until it waits for it",
            },
        }
    ),
    "StartRun": _object(
        {
            "workflow": {"type": "string"},
            "input": {
                "type": "object",
                "description": "the run's input; at most RAVEL_MAX_INPUT_BYTES as JSON",
            },
        }
    ),
    "Approve": _object(
        {"wait_id": {"type": "string", "format": "uuid"}, "data": _nullable({"type": "object"})},
        required=["wait_id"],
    ),
    "Reject": _object(
        {"wait_id": {"type": "string", "format": "uuid"}, "reason": _nullable({"type": "string"})},
        required=["wait_id"],
    ),
    "Retry": _object({"state_patch": _nullable({"type": "object"})}, required=[]),
    "Cancel": _object({"reason": _nullable({"type": "string"})}, required=[]),
    "Event": _object({"payload": _ANY}, required=[]),
}

STATUSES = {
    400: "Malformed JSON, a body that is not an object, an unknown or missing field, a field "
    "of the wrong type, an unknown query parameter, a bad cursor or Idempotency-Key",
    401: "No API key, a malformed Authorization header, or an unknown or revoked key",
    403: "The key's role may not do this (forbidden), or its principal and groups are not "
    "among the wait's approvers (not_authorized, audited as wait.refused)",
    404: "No run with that id (also a malformed id)",
    409: "Conflict: the Idempotency-Key was used with another body; the wait_id is not the "
    "run's open wait (stale); the approval was already decided or expired; the run's "
    "status does not allow it",
    413: "The body is over RAVEL_API_MAX_BODY_BYTES (checked before reading it)",
    415: "The body is not sent as Content-Type: application/json",
    422: "Valid JSON that Ravel refuses: an unknown workflow, a value over its size limit, "
    "nested too deeply, a name with NUL characters",
    500: "An unexpected error; the body has an error_id to find it in the server log",
    503: "The database is unreachable or not migrated, or the server is misconfigured",
}


def _error(status: int) -> dict[str, Any]:
    return {"description": STATUSES[status], "content": {JSON: {"schema": _ref("Error")}}}


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
}
CURSOR = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "next_cursor of the previous page",
}
WORKFLOW = {"name": "workflow", "in": "query", "required": False, "schema": {"type": "string"}}
_READ = [400, 401, 500, 503]
_WRITE = [400, 401, 403, 404, 409, 413, 415, 422, 500, 503]


def _op(
    op_id: str,
    summary: str,
    role: str | None,
    ok: dict[int, dict[str, Any]],
    errors: list[int],
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    required_body: bool = False,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {str(k): v for k, v in ok.items()} | {str(s): _error(s) for s in errors},
    }
    if role is None:
        found["security"] = []
    else:
        found["description"] = f"Needs an API key with the role {role} or higher."
    if params:
        found["parameters"] = params
    if body is not None:
        found["requestBody"] = {
            "required": required_body,
            "content": {JSON: {"schema": _ref(body)}},
        }
    return found


PATHS: dict[str, dict[str, Any]] = {
    "/openapi.json": {
        "get": _op(
            "openapi",
            "This document",
            None,
            {200: {"description": "The OpenAPI document", "content": {JSON: {"schema": {}}}}},
            [],
        )
    },
    "/runs": {
        "post": _op(
            "startRun",
            "Start a run (honours Idempotency-Key)",
            "operator",
            {
                201: _ok("Run", "Started; Location names the run"),
                200: _ok(
                    "Run",
                    "The run an earlier request with this Idempotency-Key and the "
                    "same body started (header Idempotent-Replayed: true)",
                ),
            },
            [400, 401, 403, 409, 413, 415, 422, 500, 503],
            "StartRun",
            [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 255},
                    "description": "the same key and body return the same run; the same key with "
                    "another body is refused with 409",
                }
            ],
            required_body=True,
        ),
        "get": _op(
            "listRuns",
            "Runs, newest first",
            "viewer",
            {200: _ok("RunPage", "A page of runs")},
            _READ,
            params=[
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": [s.value for s in RunStatus]},
                },
                WORKFLOW,
                LIMIT,
                CURSOR,
            ],
        ),
    },
    "/runs/{run_id}": {
        "get": _op(
            "getRun",
            "One run",
            "viewer",
            {200: _ok("Run", "The run")},
            [*_READ, 404],
            params=[RUN_ID],
        )
    },
    "/runs/{run_id}/history": {
        "get": _op(
            "runHistory",
            "The run's audit events, oldest first",
            "viewer",
            {200: _ok("RunHistory", "The audit events")},
            [*_READ, 404],
            params=[RUN_ID],
        )
    },
    "/approvals": {
        "get": _op(
            "listApprovals",
            "Open approvals the caller's principal or groups may decide",
            "approver",
            {
                200: _ok(
                    "ApprovalPage",
                    "A page of open approvals (a page may be short "
                    "or empty while next_cursor is set: go on)",
                )
            },
            [*_READ, 403],
            params=[WORKFLOW, LIMIT, CURSOR],
        )
    },
    "/runs/{run_id}/approve": {
        "post": _op(
            "approve",
            "Approve the wait you were shown, as the key's principal and groups",
            "approver",
            {200: _ok("Decision", "Approved (or the same decision repeated)")},
            _WRITE,
            "Approve",
            [RUN_ID],
            required_body=True,
        )
    },
    "/runs/{run_id}/reject": {
        "post": _op(
            "reject",
            "Reject the wait you were shown, as the key's principal and groups",
            "approver",
            {200: _ok("Decision", "Rejected (or the same decision repeated)")},
            _WRITE,
            "Reject",
            [RUN_ID],
            required_body=True,
        )
    },
    "/runs/{run_id}/retry": {
        "post": _op(
            "retryRun",
            "Resume a failed run at the step that failed",
            "operator",
            {200: _ok("Run", "The run, pending again")},
            _WRITE,
            "Retry",
            [RUN_ID],
        )
    },
    "/runs/{run_id}/cancel": {
        "post": _op(
            "cancelRun",
            "Cancel a live run",
            "operator",
            {200: _ok("Run", "The run, cancelled")},
            _WRITE,
            "Cancel",
            [RUN_ID],
        )
    },
    "/runs/{run_id}/events/{name}": {
        "post": _op(
            "sendEvent",
            "Send an event to a run",
            "operator",
            {200: _ok("EventResult", "Delivered or kept")},
            _WRITE,
            "Event",
            [
                RUN_ID,
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "maxLength": 200},
                },
            ],
        )
    },
}


def document(server: str = "") -> dict[str, Any]:
    """The OpenAPI document, its server URL set to where the blueprint is mounted."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ravel HTTP API",
            "version": "1",
            "description": "Start, watch and decide durable runs. Authenticate with "
            "`Authorization: Bearer <key>` (keys from `ravel keys create`). "
            'Every error is JSON: {"error": code, "message": text}; an '
            "unknown route answers 404 and a wrong method 405 the same way.",
        },
        "servers": [{"url": server or "/"}],
        "security": [{"bearerAuth": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key (rvl_...)",
                }
            },
        },
    }


__all__ = ["PATHS", "SCHEMAS", "STATUSES", "document"]
