"""The operator's dashboard inside a Django project, as the signed-in Django user.

``include("pipeline.contrib.django.urls")`` serves it under ``ui/`` (``/ravel/ui/runs`` for
the README's ``path("ravel/", ...)``): the same pages and actions as under ``ravel serve``
(:mod:`pipeline.web.dashboard`), rendered by a small Flask app that holds only the
dashboard's blueprint. This view checks the Django user, then hands the request to that app
as WSGI, with the user as the dashboard's caller (its ``RAVEL_API_IDENTITY`` hook reads it
from the environ), and turns the answer into a Django response:

- an anonymous visitor is sent to ``settings.LOGIN_URL`` (``?next=`` back here); a signed-in
  user without a Ravel role (see :mod:`pipeline.contrib.django.conf`) gets a 403 page. No
  API key signs in here: the identity is the Django user's only.
- The caller is :func:`pipeline.contrib.django.identity.caller_of`, as for the JSON routes:
  the username is the actor of every decision and operator action in the run's history, and
  the user's Django groups are matched against ``group:...`` approvers.
- The dashboard's forms carry their own CSRF token, kept in its session cookie (signed with
  a key derived from ``SECRET_KEY``, path limited to the dashboard, HttpOnly, with the
  project's ``SESSION_COOKIE_SECURE``/``SAMESITE``): the view is exempt from Django's CSRF
  middleware, and the dashboard refuses a POST without its token (400, nothing done).
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.crypto import salted_hmac
from django.views.decorators.csrf import csrf_exempt
from flask import Flask
from flask import Request as FlaskRequest
from flask import request as flask_request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from pipeline.contrib.django.conf import options
from pipeline.contrib.django.identity import caller_of
from pipeline.web.dashboard import PATH, install
from pipeline.web.dashboard.base import routing_error
from pipeline.web.keys import Caller

#: the WSGI environ key carrying the Django user's :class:`Caller` to the dashboard
CALLER = "ravel.caller"
#: the dashboard's own session cookie (its CSRF token and flashed messages)
COOKIE = "ravel_dashboard"
_SALT = "pipeline.contrib.django.dashboard"
# Headers the Django response computes itself, or that describe the WSGI hop only.
_SKIPPED = frozenset({"set-cookie", "content-length", "connection", "transfer-encoding"})

_app: Flask | None = None
_lock = threading.Lock()


def _identity(request: FlaskRequest) -> Caller | None:
    found = request.environ.get(CALLER)
    return found if isinstance(found, Caller) else None


class _Cookies(SecureCookieSessionInterface):
    """The dashboard's session cookie, sent back only under the dashboard's own path."""

    def get_cookie_path(self, app: Flask) -> str:
        return flask_request.script_root + PATH


def _build() -> Flask:
    app = Flask("ravel_django_dashboard")
    # Derived from SECRET_KEY: the same in every process; a new SECRET_KEY (on restart)
    # ends the dashboard's sessions, as it ends Django's.
    app.secret_key = salted_hmac(_SALT, "flask-session", algorithm="sha256").hexdigest()
    app.session_interface = _Cookies()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=bool(settings.SESSION_COOKIE_SECURE),
        SESSION_COOKIE_SAMESITE=settings.SESSION_COOKIE_SAMESITE or None,
        RAVEL_API_IDENTITY=_identity,
    )
    install(app)

    def missing(exc: HTTPException) -> Any:  # a path or method the dashboard does not have
        return routing_error(exc, flask_request.script_root + PATH)

    for code in (404, 405):
        app.register_error_handler(code, missing)
    return app


def flask_app() -> Flask:
    """The Flask app serving the dashboard to Django (built once, on first use)."""
    global _app
    if _app is None:
        with _lock:  # two first requests at once build it once
            if _app is None:
                _app = _build()
    return _app


def _wsgi(text: str) -> str:
    """A path as WSGI carries it: its UTF-8 bytes, one character per byte (PEP 3333)."""
    return text.encode("utf-8").decode("latin-1")


def _environ(request: HttpRequest, rest: str, caller: Caller) -> dict[str, Any]:
    # request.path is decoded; it ends with "ui/" + rest, so what comes before is the mount.
    tail = PATH + "/" + rest
    mount = request.path[: -len(tail)] if request.path.endswith(tail) else ""
    body = request.body
    environ: dict[str, Any] = {k: v for k, v in request.META.items() if isinstance(v, str)}
    environ.update(
        {
            "REQUEST_METHOD": request.method or "GET",
            "SCRIPT_NAME": _wsgi(mount),
            "PATH_INFO": _wsgi(tail),
            "QUERY_STRING": str(request.META.get("QUERY_STRING", "")),
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": str(request.META.get("SERVER_NAME", "localhost")),
            "SERVER_PORT": str(request.META.get("SERVER_PORT", "80")),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.scheme or "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            CALLER: caller,
        }
    )
    return environ


def _call(environ: dict[str, Any]) -> HttpResponse:
    """Run the dashboard on ``environ``; its status, headers, cookies and body for Django."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [(status, headers)]
        return chunks.append

    result: Iterable[bytes] = flask_app()(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started[0]
    # Django's reason phrase (Werkzeug writes them in capitals).
    response = HttpResponse(b"".join(chunks), status=int(status.split(" ", 1)[0]))
    for name, value in headers:
        if name.lower() == "set-cookie":
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(value)
            for key, morsel in cookie.items():
                response.cookies[key] = morsel
        elif name.lower() not in _SKIPPED:
            response[name] = value
    return response


@csrf_exempt  # the dashboard's forms carry its own CSRF token, checked by the dashboard
def dashboard(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any page or form of the dashboard, for the signed-in Django user with a Ravel role."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    caller = caller_of(request)
    if caller is None:
        return render(
            request,
            "ravel/problem.html",
            {
                "ravel_base": options().base_template,
                "error": (
                    f"{request.user.get_username()} has no Ravel role, so the dashboard "
                    "is closed to them. An administrator grants one with the permissions "
                    "named in settings.RAVEL (VIEW_PERMISSION, APPROVE_PERMISSION, "
                    "OPERATE_PERMISSION)."
                ),
            },
            status=403,
        )
    return _call(_environ(request, rest, caller))


__all__ = ["CALLER", "COOKIE", "dashboard", "flask_app"]
