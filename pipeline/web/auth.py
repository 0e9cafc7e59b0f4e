"""Who is calling: a bearer API key (or the host app's own identity hook), and its role."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import current_app, request

from pipeline.errors import ConfigurationError
from pipeline.web import keys
from pipeline.web.errors import ApiError
from pipeline.web.keys import Caller, Role

log = logging.getLogger("ravel.web")

_CHALLENGE = 'Bearer realm="ravel"'


def keys_path() -> Path:
    """The keys file: the app's ``RAVEL_API_KEYS_FILE`` setting, else the environment's."""
    configured = current_app.config.get("RAVEL_API_KEYS_FILE")
    return Path(configured) if configured else keys.keys_file()


def key_ring() -> keys.KeyRing:
    """The keys file, read now (a revoked key stops working at once).

    Raises:
        ApiError: 503 when the file cannot be read; the reason goes to the server log only.
    """
    try:
        return keys.load(keys_path())
    except ConfigurationError as exc:
        # The reason names files on the server: for its operator, not for any caller.
        log.error("API keys cannot be loaded: %s", exc)
        raise ApiError(
            503,
            "keys_misconfigured",
            "this server's API keys configuration cannot "
            "be read; its operator finds the reason in the server log",
        ) from None


def _unauthorized(message: str, *, invalid: bool = False) -> ApiError:
    challenge = _CHALLENGE + (', error="invalid_token"' if invalid else "")
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": challenge})


def _from_key() -> Caller:
    header = request.headers.get("Authorization", "")
    if not header.strip():
        raise _unauthorized(
            "this API needs an API key: send the header "
            "`Authorization: Bearer <key>` (an operator creates keys with "
            "`ravel keys create NAME --role viewer`)"
        )
    scheme, _, secret = header.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > 500:
        raise _unauthorized("malformed Authorization header; send `Authorization: Bearer <key>`")
    ring = key_ring()
    if not ring.keys:
        raise _unauthorized(
            "no API keys are configured on this server; its operator creates "
            "one with `ravel keys create NAME --role viewer`"
        )
    found = ring.find(secret)
    if found is None:
        raise _unauthorized(
            "the API key is not valid (unknown or revoked); check the key, or "
            "ask an operator for a new one",
            invalid=True,
        )
    return found.caller()


def authenticate() -> Caller:
    """The caller of this request.

    A host app may set ``app.config["RAVEL_API_IDENTITY"]`` to a function of the request
    returning a :class:`Caller` (from its own login session) or None (then API keys apply).

    Raises:
        ApiError: 401 without a valid key, 503 when the keys file is broken.
    """
    hook = current_app.config.get("RAVEL_API_IDENTITY")
    if hook is not None:
        caller = hook(request)
        if caller is not None:
            if not isinstance(caller, Caller):
                raise TypeError("RAVEL_API_IDENTITY must return a pipeline.web.Caller or None")
            return caller
    return _from_key()


def require(role: Role) -> Caller:
    """The caller, if their role is at least ``role``; 401 or 403 otherwise."""
    caller = authenticate()
    if caller.role < role:
        who = f"the key {caller.key_name!r}" if caller.key_name else repr(caller.principal)
        raise ApiError(
            403,
            "forbidden",
            f"{who} has the role {caller.role.label}; this needs "
            f"the role {role.label} or higher. Nothing was changed",
        )
    return caller


__all__ = ["authenticate", "key_ring", "keys_path", "require"]
