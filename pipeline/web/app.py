"""Mounting the API in a Flask app, and the small app ``ravel serve`` runs under waitress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, redirect, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from pipeline.web import links, slack
from pipeline.web.api import blueprint, http_error
from pipeline.web.dashboard import install as install_dashboard
from pipeline.web.dashboard.base import routing_error

Handler = Callable[[Any], Any]


def _under(prefix: str) -> bool:
    return not prefix or request.path == prefix or request.path.startswith(prefix + "/")


def mount(app: Flask, url_prefix: str = "", **options: Any) -> None:
    """Register the API blueprint under ``url_prefix``, with JSON answers for unknown routes
    and wrong methods under that prefix, and the dashboard under ``url_prefix + "/ui"``
    (see :func:`pipeline.web.dashboard.install`).

    Flask matches routes before it knows the blueprint, so a blueprint cannot answer its own
    404 and 405: this registers app-level handlers that answer JSON under the prefix and hand
    every other path to the handler the app had before (or Flask's default page).

    Args:
        app: the host Flask app.
        url_prefix: where the API lives, e.g. ``/api/ravel`` (``""``: at the root).
        options: passed to ``register_blueprint`` (``name=`` to mount it twice).
    """
    prefix = url_prefix.rstrip("/")
    app.register_blueprint(blueprint, url_prefix=prefix or None, **options)
    ui = install_dashboard(app, prefix, **options)  # the dashboard, at <prefix>/ui
    for extra in (slack.blueprint, links.blueprint):  # Slack's buttons, approval links
        named = {"name": f"{options['name']}_{extra.name}"} if "name" in options else {}
        app.register_blueprint(extra, url_prefix=prefix or None, **{**options, **named})
    for exc_class in (NotFound, MethodNotAllowed):
        code = exc_class.code
        assert code is not None
        previous: Handler | None = app.error_handler_spec.get(None, {}).get(code, {}).get(exc_class)

        def handler(exc: HTTPException, previous: Handler | None = previous) -> Any:
            if _under(ui):  # pages answer HTML, the API JSON
                return routing_error(exc, ui)
            if _under(prefix):
                return http_error(exc)
            return previous(exc) if previous is not None else exc

        app.register_error_handler(code, handler)


def create_app(url_prefix: str = "", config: dict[str, Any] | None = None) -> Flask:
    """A Flask app serving the API and the dashboard (what ``ravel serve`` runs); ``/``
    (or the prefix) leads to the dashboard.

    Args:
        url_prefix: where the API lives (default: at the root).
        config: Flask settings, e.g. ``RAVEL_API_KEYS_FILE``, ``RAVEL_API_MAX_BODY_BYTES``.
    """
    app = Flask("ravel")
    app.config["SESSION_COOKIE_NAME"] = "ravel_session"
    app.config.update(config or {})
    mount(app, url_prefix)
    prefix = url_prefix.rstrip("/")
    app.add_url_rule(prefix + "/", "ravel_home", lambda: redirect(f"{prefix}/ui/runs"))
    return app


__all__ = ["create_app", "mount"]
