"""A small browser for the example apps' end-to-end tests: cookies, forms with their CSRF
token, no redirects followed (each answer is checked as it comes)."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Page:
    """One answer: status, headers and body."""

    status: int
    headers: dict[str, str]
    text: str

    @property
    def location(self) -> str:
        """Where a redirect points (path only)."""
        return urllib.parse.urlsplit(self.headers.get("Location", "")).path

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.text)

    def field(self, name: str) -> str:
        """The value of the form field ``name`` on this page."""
        found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', self.text)
        assert found, f"no field {name} on the page:\n{self.text[:3000]}"
        return found.group(1)


class Browser:
    """One person's browser: ``Browser(base).login("alice", "alice")``."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def cookie(self, name: str) -> str:
        """The value of the cookie ``name``."""
        for cookie in self.cookies:
            if cookie.name == name and cookie.value is not None:
                return cookie.value
        raise AssertionError(f"no cookie {name}")

    def open(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Page:
        """Send a request; any status comes back as a :class:`Page`."""
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Referer": self.base + path, **(headers or {})},
        )
        try:
            with self.opener.open(request, timeout=30) as answer:
                return Page(answer.status, dict(answer.headers), answer.read().decode())
        except urllib.error.HTTPError as failed:
            return Page(failed.code, dict(failed.headers), failed.read().decode())

    def get(self, path: str, headers: dict[str, str] | None = None) -> Page:
        """GET ``path``."""
        return self.open("GET", path, headers=headers)

    def post(
        self,
        path: str,
        form: dict[str, str],
        headers: dict[str, str] | None = None,
    ) -> Page:
        """POST a form."""
        return self.open(
            "POST",
            path,
            urllib.parse.urlencode(form).encode(),
            {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        )

    def post_json(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Page:
        """POST a JSON body."""
        return self.open(
            "POST",
            path,
            json.dumps(body).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )
