"""Helpers of the dashboard tests: a browser-like test client per person (cookies, the
session's CSRF token), and the app with the keys of :data:`support.KEYS`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pipeline.web import create_app
from pipeline.web import keys as api_keys
from tests.integration.web.support import KEYS


def build_app(tmp_path: Path) -> tuple[Flask, dict[str, str], Path]:
    """``ravel serve``'s app with a key per entry of KEYS: (app, secrets, keys file)."""
    path = tmp_path / "api-keys.toml"
    secrets = {}
    for name, (principal, role, groups) in KEYS.items():
        secrets[name], _ = api_keys.create(
            path, name, principal=principal, roles=[role], groups=groups
        )
    return create_app(config={"RAVEL_API_KEYS_FILE": str(path)}), secrets, path


class Browser:
    """One person's browser on the dashboard: ``Browser(app, secrets["ops"]).signed_in()``."""

    def __init__(self, app: Flask, secret: str | None = None) -> None:
        self.client: FlaskClient = app.test_client()
        self.secret = secret

    def signed_in(self) -> Browser:
        page = self.client.get("/ui/login")
        assert page.status_code == 200, page.get_data(as_text=True)
        answer = self.client.post(
            "/ui/login", data={"key": self.secret, "csrf_token": self.token(page)}
        )
        assert answer.status_code == 303, answer.get_data(as_text=True)
        return self

    @staticmethod
    def token(page: TestResponse) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
        assert found, "no CSRF token in the page"
        return found.group(1)

    def csrf(self) -> str:
        with self.client.session_transaction() as session:
            token = session.get("ravel_csrf")
        assert isinstance(token, str)
        return token

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, **kwargs)

    def html(self, path: str, status: int = 200) -> str:
        page = self.client.get(path)
        assert page.status_code == status, page.get_data(as_text=True)[-3000:]
        return page.get_data(as_text=True)

    def post(self, path: str, csrf: str | None = "session", **fields: Any) -> TestResponse:
        """POST a form; ``csrf``: the session's token (default), another one, or None."""
        data = dict(fields)
        if csrf == "session":
            data["csrf_token"] = self.csrf()
        elif csrf is not None:
            data["csrf_token"] = csrf
        return self.client.post(path, data=data)


def hidden(page: str, name: str) -> str:
    """The value of the first hidden field ``name`` of a page."""
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no field {name}"
    return found.group(1)
