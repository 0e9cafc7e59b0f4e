"""Who is looking at the dashboard: an API key signed in once, kept in a signed session cookie.

Browsers cannot send bearer headers, so the sign-in page takes an API key and stores the
key's SHA-256 (never the key) in Flask's session: a cookie signed with ``RAVEL_SECRET_KEY``
(or a secret generated once under ``RAVEL_HOME``), HttpOnly and SameSite=Strict under
``ravel serve``. Every request looks the hash up in the keys file again, so a revoked key
signs its sessions out at once; a session also ends after :data:`SESSION_HOURS`. A host app's
``RAVEL_API_IDENTITY`` hook, when it names someone, wins (its own login session). Every POST
carries the session's CSRF token.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from pathlib import Path

from flask import current_app, request, session

from pipeline.errors import ConfigurationError
from pipeline.settings import get_settings
from pipeline.web.auth import key_ring
from pipeline.web.errors import ApiError
from pipeline.web.keys import Caller

log = logging.getLogger("ravel.web.dashboard")

#: a dashboard session ends this long after sign-in
SESSION_HOURS = 12
_KEY, _AT, _CSRF = "ravel_key", "ravel_signed_in_at", "ravel_csrf"
_SECRET_FILE = "secret-key"


def secret_key() -> str:
    """``RAVEL_SECRET_KEY``, else the secret in ``$RAVEL_HOME/secret-key`` (created once).

    Raises:
        ConfigurationError: the variable is set but shorter than 32 characters, or the file
            cannot be read or written.
    """
    configured = os.environ.get("RAVEL_SECRET_KEY", "").strip()
    if configured:
        if len(configured) < 32:
            raise ConfigurationError(
                "RAVEL_SECRET_KEY must be at least 32 characters (e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe"
                "(48))'`)"
            )
        return configured
    return _stored_secret(get_settings().home / _SECRET_FILE)


def _stored_secret(path: Path) -> str:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: of two processes starting together, one writes and both read its secret.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
        for _ in range(50):  # the other process may be writing it this instant
            found = path.read_text(encoding="ascii").strip()
            if found:
                return found
            time.sleep(0.01)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"cannot read or create the dashboard's secret key {path}: "
            f"{exc}; set RAVEL_SECRET_KEY instead"
        ) from None
    raise ConfigurationError(
        f"the dashboard's secret key file {path} is empty; delete it or set RAVEL_SECRET_KEY"
    )


def host_caller() -> Caller | None:
    """The caller the host app's ``RAVEL_API_IDENTITY`` hook names (its own login), or None."""
    hook = current_app.config.get("RAVEL_API_IDENTITY")
    if hook is None:
        return None
    found = hook(request)
    if found is not None and not isinstance(found, Caller):
        raise TypeError("RAVEL_API_IDENTITY must return a pipeline.web.Caller or None")
    return found


def current_caller() -> Caller | None:
    """The signed-in caller (the host's identity hook first), or None."""
    found = host_caller()
    if found is not None:
        return found
    digest, at = session.get(_KEY), session.get(_AT)
    if not isinstance(digest, str) or not isinstance(at, int | float):
        return None
    if time.time() - at > SESSION_HOURS * 3600:
        sign_out()
        return None
    match = None
    for key in key_ring().keys:  # every entry compared: the time says nothing about which
        if hmac.compare_digest(digest, key.sha256):
            match = key
    if match is None:  # revoked since
        sign_out()
        return None
    return match.caller()


def sign_in(secret: str) -> Caller | None:
    """Start a session for the key ``secret``; None (and no session) if it is not valid."""
    found = key_ring().find(secret.strip()) if 0 < len(secret.strip()) <= 500 else None
    if found is None:
        return None
    session.clear()  # a new session: nothing from before sign-in carries over (fixation)
    session[_KEY] = found.sha256
    session[_AT] = int(time.time())
    session[_CSRF] = secrets.token_urlsafe(32)
    session.permanent = True
    log.info("dashboard: %s signed in with the key %r", found.principal, found.name)
    return found.caller()


def sign_out() -> None:
    """End the session (its CSRF token too)."""
    for name in (_KEY, _AT, _CSRF):
        session.pop(name, None)


def csrf_token() -> str:
    """This session's CSRF token (created on first use), for every POST form."""
    token = session.get(_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF] = token
    return token


def check_csrf() -> None:
    """Refuse a POST whose form does not carry this session's CSRF token (400, nothing done)."""
    sent = request.form.get("csrf_token", "")
    token = session.get(_CSRF)
    if not isinstance(token, str) or not hmac.compare_digest(sent.encode(), token.encode()):
        raise ApiError(
            400,
            "csrf_failed",
            "this form expired or did not come from this "
            "dashboard (its security token does not match); nothing was done. "
            "Reload the page and try again",
        )


__all__ = [
    "SESSION_HOURS",
    "check_csrf",
    "csrf_token",
    "current_caller",
    "host_caller",
    "secret_key",
    "sign_in",
    "sign_out",
]
