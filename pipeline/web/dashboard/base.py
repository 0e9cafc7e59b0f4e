"""The dashboard's blueprint: who may see which page, CSRF on every POST, HTML errors, and
the headers that keep its pages private, unframed and free of inline scripts."""

from __future__ import annotations

import functools
import json
import logging
import posixpath
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from pipeline.errors import PipelineError
from pipeline.redact import redact
from pipeline.web.dashboard import session as signed
from pipeline.web.errors import ApiError, code_of, status_of, unexpected
from pipeline.web.keys import Caller, Role

log = logging.getLogger("ravel.web.dashboard")
_WEB = Path(__file__).resolve().parent.parent

blueprint = Blueprint(
    "ravel_dashboard",
    __name__,
    template_folder=str(_WEB / "templates"),
    static_folder=str(_WEB / "static" / "ravel"),
    static_url_path="/static",
)

F = TypeVar("F", bound=Callable[..., Any])
#: longest JSON shown for one value; the rest is cut with a note
MAX_JSON_CHARS = 20_000
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def caller() -> Caller:
    """The caller of a page (set by :func:`page`)."""
    found: Caller = g.ravel_caller
    return found


def page(role: Role) -> Callable[[F], F]:
    """A page for callers of ``role`` or higher: sign-in first, 403 below the role."""

    def wrap(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            found = signed.current_caller()
            if found is None:
                if request.method == "GET" and not request.headers.get("X-Ravel-Refresh"):
                    return redirect(url_for(".login", next=request.full_path.rstrip("?")))
                raise ApiError(
                    401,
                    "unauthorized",
                    "you are not signed in (or your session ended); sign in again",
                )
            if found.role < role:
                raise ApiError(
                    403,
                    "forbidden",
                    f"{found.principal} has the role "
                    f"{found.role.label}; this needs the role {role.label} or "
                    "higher. Nothing was changed",
                )
            g.ravel_caller = found
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return wrap


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path of this dashboard, never another site."""
    home = url_for(".runs")
    if not target:
        return home
    parts = urlsplit(target)
    root = home.rsplit("/runs", 1)[0]
    if (
        parts.scheme
        or parts.netloc
        or "\\" in target
        or target.startswith("//")
        or not posixpath.normpath(parts.path).startswith(root + "/")
        or "/." in parts.path
    ):
        return home
    return target


# -- helpers the templates use -------------------------------------------------------------


def pretty(value: Any) -> str:
    """A JSON value as indented text, secrets masked, cut past :data:`MAX_JSON_CHARS`."""
    text = json.dumps(redact(value), indent=2, ensure_ascii=False, default=str)
    if len(text) > MAX_JSON_CHARS:
        return text[:MAX_JSON_CHARS] + f"\n… ({len(text) - MAX_JSON_CHARS} more characters)"
    return text


def inline(value: Any, limit: int = 120) -> str:
    """A JSON value on one line, cut to ``limit`` characters."""
    text = (
        value
        if isinstance(value, str)
        else json.dumps(redact(value), ensure_ascii=False, default=str)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(moment: datetime | None) -> str:
    """``2026-01-31 09:30:12 UTC``."""
    if moment is None:
        return "\u2013"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: datetime | None) -> str:
    """``3 min ago``, ``in 2 h`` (by this server's clock)."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - aware).total_seconds()
    return f"{span(abs(seconds))} ago" if seconds >= 0 else f"in {span(-seconds)}"


def span(seconds: float | None) -> str:
    """A duration: ``850 ms``, ``12.3 s``, ``4 min``, ``3 h``, ``2 d``."""
    if seconds is None:
        return "\u2013"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@blueprint.context_processor
def _helpers() -> dict[str, Any]:
    found: Caller | None = g.get("ravel_caller")
    return {
        "pretty": pretty,
        "inline": inline,
        "when": when,
        "ago": ago,
        "span": span,
        "csrf_token": signed.csrf_token,
        "me": found,
        "Role": Role,
        "session_hours": signed.SESSION_HOURS,
        "can": lambda role: found is not None and found.role >= role,
    }


# -- every request -------------------------------------------------------------------------


@blueprint.before_request
def _csrf() -> None:
    if request.method == "POST":
        signed.check_csrf()


@blueprint.after_request
def _headers(response: Response) -> Response:
    # Private pages: never cached, never framed (a framed Approve button is a click-jack),
    # scripts only from this server.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def error_page(status: int, code: str, message: str) -> Response:
    """An HTML error page (the message escaped like everything else)."""
    response = Response(
        render_template("ravel/error.html", status=status, code=code, message=message), status
    )
    return response


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return error_page(exc.status, exc.code, exc.message)


@blueprint.errorhandler(PipelineError)
def _pipeline_error(exc: PipelineError) -> Response:
    status = status_of(exc)
    if status is None:
        return _unexpected(exc)
    return error_page(status, code_of(exc), str(exc) or type(exc).__name__)


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return error_page(
        exc.code or 500,
        (exc.name or "error").lower().replace(" ", "_"),
        exc.description or exc.name or "error",
    )


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    found = unexpected(request.method, request.path, exc)
    return error_page(500, found["error"], found["message"])


def routing_error(exc: HTTPException, root: str) -> Response:
    """An unknown dashboard path or a wrong method (answered by the app, outside the
    blueprint, so without its endpoints): a plain HTML page linking to ``root``."""
    code = exc.code or 404
    response = Response(
        render_template("ravel/missing.html", status=code, name=exc.name or "error", root=root),
        code,
    )
    if code == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))  # type: ignore[attr-defined]
    return _headers(response)


__all__ = ["blueprint", "caller", "error_page", "page", "pretty", "routing_error", "safe_next"]
