"""Ravel over HTTP: a Flask blueprint with bearer API keys, and the app ``ravel serve`` runs.

Mount it in your Flask app (JSON 404/405 under the prefix included)::

    from pipeline.web import mount
    mount(app, "/api/ravel")

or register ``pipeline.web.api.blueprint`` yourself. The routes, fields and statuses are in
the README and in the OpenAPI document the API serves at ``openapi.json``.
"""

from __future__ import annotations

from pipeline.web.api import blueprint
from pipeline.web.app import create_app, mount
from pipeline.web.keys import Caller, Role

__all__ = ["Caller", "Role", "blueprint", "create_app", "mount"]
