"""The operator's dashboard: server-rendered pages (Jinja, autoescaped; one small script for
live refresh) over the same data, API keys and roles as the HTTP API.

``pipeline.web.mount`` registers it under ``<prefix>/ui`` beside the API; ``ravel serve``
serves both. Pages: runs (filters, search, cursor pages, live rows), a run (timeline of steps,
attempts and calls with state diffs, the open wait, audit verification, operator actions),
approvals, workers and the reaper. See :mod:`pipeline.web.dashboard.session` for sign-in.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from flask import Flask

from pipeline.web.dashboard import actions, pages
from pipeline.web.dashboard.base import blueprint, error_page
from pipeline.web.dashboard.session import SESSION_HOURS, secret_key

#: where the dashboard lives under the API's prefix
PATH = "/ui"


def install(app: Flask, url_prefix: str = "", **options: Any) -> str:
    """Register the dashboard under ``url_prefix + "/ui"``; return that path.

    An app without a ``secret_key`` gets Ravel's (``RAVEL_SECRET_KEY``, else one generated
    and kept under ``RAVEL_HOME``), with HttpOnly, SameSite=Strict session cookies (Secure
    with ``RAVEL_SECURE_COOKIES=true``); an app
    with its own key keeps its key and cookie settings.

    Args:
        app: the Flask app.
        url_prefix: the API's prefix (``""``: the dashboard is at ``/ui``).
        options: passed to ``register_blueprint`` (``name=``: a second mount).
    """
    path = url_prefix.rstrip("/") + PATH
    if not app.secret_key:
        app.secret_key = secret_key()
        app.config["SESSION_COOKIE_HTTPONLY"] = True
        app.config["SESSION_COOKIE_SAMESITE"] = "Strict"
        app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=SESSION_HOURS)
        # Behind HTTPS (a TLS proxy): cookies only over HTTPS.
        secure = os.environ.get("RAVEL_SECURE_COOKIES", "").strip().lower()
        app.config["SESSION_COOKIE_SECURE"] = secure in ("1", "true", "yes")
    named = {"name": f"{options['name']}_dashboard"} if "name" in options else {}
    app.register_blueprint(blueprint, url_prefix=path, **{**options, **named})
    return path


__all__ = ["PATH", "actions", "blueprint", "error_page", "install", "pages"]
