"""HTTP statuses for Ravel's errors, in one table, and the JSON error body.

Framework-free, so the Flask blueprint and the Django views answer alike:
``{"error": "<code>", "message": "<what went wrong and what to do>"}``.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from pipeline import errors

log = logging.getLogger("ravel.web")

#: Ravel's errors and the status each one is answered with; the most specific class wins.
STATUS: dict[type[errors.PipelineError], int] = {
    errors.ValueTooLarge: 422,
    errors.InvalidInput: 422,
    errors.WorkflowNotFound: 422,
    errors.RunNotFound: 404,
    errors.WaitNotFound: 409,
    errors.NotWaiting: 409,
    errors.InvalidTransition: 409,
    errors.WaitExpired: 409,
    errors.WaitAlreadyDecided: 409,
    errors.NotAuthorized: 403,
    errors.DatabaseNotMigrated: 503,
    errors.StoreUnavailable: 503,
    errors.ConfigurationError: 503,
}


class ApiError(Exception):
    """A refusal by the HTTP layer itself (bad request, authentication, content type, size).

    Args:
        status: the HTTP status.
        code: a stable machine-readable code (``missing_field``).
        message: what was wrong and what to do.
        headers: extra response headers (``WWW-Authenticate``).
    """

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def code_of(exc: errors.PipelineError) -> str:
    """``WaitAlreadyDecided`` -> ``wait_already_decided``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def status_of(exc: errors.PipelineError) -> int | None:
    """The status for a Ravel error, or None for one the table does not list (a bug: 500)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return None


def body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON error body: one line of message (newlines folded)."""
    return {"error": code, "message": " ".join(str(message).split()), **extra}


def unexpected(method: str, path: str, exc: BaseException) -> dict[str, Any]:
    """Log an unexpected error under a new id; the body that tells the caller that id only
    (no traceback or message reaches a caller)."""
    error_id = uuid.uuid4().hex[:12]
    log.error("error %s on %s %s", error_id, method, path, exc_info=exc)
    return body(
        "internal_error",
        f"an unexpected error occurred; the server log has the details under error id {error_id}",
        error_id=error_id,
    )


__all__ = ["STATUS", "ApiError", "body", "code_of", "status_of", "unexpected"]
