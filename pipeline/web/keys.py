"""API keys: who a bearer key belongs to (a principal and groups) and what it may do (roles).

Keys live in a TOML (or JSON) file named by ``RAVEL_API_KEYS_FILE`` (default
``$RAVEL_HOME/api-keys.toml``), written by ``ravel keys create``::

    [[keys]]
    name = "alice-laptop"
    principal = "alice"
    roles = ["approver"]
    groups = ["finance"]
    sha256 = "9f86d0..."

Only the SHA-256 of each key is stored. A key is 256 random bits (``rvl_`` and 43 URL-safe
characters), so its hash cannot be reversed by guessing: a slow password hash (scrypt,
bcrypt) protects low-entropy secrets and would only add latency here. The presented key's
hash is compared with every stored one in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import re
import secrets
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigurationError
from pipeline.settings import get_settings

PREFIX = "rvl_"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Names, principals and groups: visible characters only (no spaces, quotes, backslashes or
# control characters), so they are safe in the audit log and in the TOML file as written.
_NAME = re.compile(r'^[^\s"\\\x00-\x1f\x7f]{1,200}$')
_FIELDS = {"name", "principal", "roles", "groups", "sha256"}


class Role(enum.IntEnum):
    """What a key may do; each role may do everything the roles below it may."""

    #: read runs, their history and the OpenAPI document
    VIEWER = 1
    #: also decide approvals (the wait's approvers must still name its principal or a group)
    APPROVER = 2
    #: also start runs, send events, retry and cancel runs
    OPERATOR = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        """A role from its name; :class:`ConfigurationError` naming the choices otherwise."""
        try:
            return cls[text.upper()]
        except (KeyError, AttributeError):
            raise ConfigurationError(
                f"unknown role {text!r}; roles are: {', '.join(r.label for r in cls)}"
            ) from None

    @property
    def label(self) -> str:
        """The role's name as written in the keys file (``approver``)."""
        return self.name.lower()


@dataclass(frozen=True)
class Caller:
    """Who makes a request, as the identity source vouches: used as the actor of every
    decision and operator action, and (with ``groups``) matched against approvers.

    Attributes:
        principal: the person or service (``alice``); the audit log's actor.
        role: the highest role the caller holds.
        groups: the groups the person belongs to (``finance``), without ``group:``.
        key_name: the API key's name, when the caller authenticated with one.
    """

    principal: str
    role: Role
    groups: tuple[str, ...] = ()
    key_name: str | None = None


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its owner, roles, groups and the SHA-256 of the secret."""

    name: str
    principal: str
    roles: tuple[Role, ...]
    groups: tuple[str, ...]
    sha256: str

    def caller(self) -> Caller:
        """The identity a request with this key acts as."""
        return Caller(self.principal, max(self.roles), self.groups, self.name)


def digest(secret: str) -> str:
    """The hex SHA-256 of a key, as stored."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    """A new random key: ``rvl_`` and 32 random bytes, URL-safe base64."""
    return PREFIX + secrets.token_urlsafe(32)


def keys_file() -> Path:
    """``RAVEL_API_KEYS_FILE``, or ``api-keys.toml`` under ``RAVEL_HOME``."""
    configured = os.environ.get("RAVEL_API_KEYS_FILE", "").strip()
    return Path(configured) if configured else get_settings().home / "api-keys.toml"


def check_name(value: Any, what: str) -> str:
    """A name, principal or group as the keys file accepts it, else ConfigurationError."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigurationError(
            f"{what} {value!r} is not valid: 1 to 200 visible characters, without spaces, "
            "quotes or backslashes"
        )
    return value


def _entry(raw: Any, where: str) -> ApiKey:
    if not isinstance(raw, dict):
        raise ConfigurationError(
            f"{where} must be a table of name, principal, roles, groups, sha256"
        )
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown fields {', '.join(unknown)}; "
            f"fields are: {', '.join(sorted(_FIELDS))}"
        )
    for required in ("name", "roles", "sha256"):
        if required not in raw:
            raise ConfigurationError(f"{where} lacks {required!r}")
    name = check_name(raw["name"], f"{where}: name")
    principal = check_name(raw.get("principal", name), f"key {name!r}: principal")
    roles, groups = raw["roles"], raw.get("groups", [])
    if not isinstance(roles, list) or not roles:
        raise ConfigurationError(f'key {name!r}: roles must be a non-empty list, e.g. ["approver"]')
    if not isinstance(groups, list):
        raise ConfigurationError(f'key {name!r}: groups must be a list, e.g. ["finance"]')
    hashed = raw["sha256"]
    if not isinstance(hashed, str) or not _HEX64.match(hashed):
        raise ConfigurationError(
            f"key {name!r}: sha256 must be 64 lowercase hex digits (the "
            "hash `ravel keys create` writes, never the key itself)"
        )
    return ApiKey(
        name,
        principal,
        tuple(Role.parse(r) for r in roles),
        tuple(check_name(g, f"key {name!r}: group").removeprefix("group:") for g in groups),
        hashed,
    )


def parse(text: str, path: Path) -> list[ApiKey]:
    """The keys of a keys file's text (TOML, or JSON for a ``.json`` path)."""
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except ValueError as exc:
        raise ConfigurationError(
            f"the API keys file {path} is not valid "
            f"{'JSON' if path.suffix == '.json' else 'TOML'}: {exc}"
        ) from None
    raw = data.get("keys", []) if isinstance(data, dict) else None
    if not isinstance(raw, list) or (isinstance(data, dict) and set(data) - {"keys"}):
        raise ConfigurationError(
            f"the API keys file {path} must hold only a list `keys` of entries ([[keys]] tables)"
        )
    try:
        found = [_entry(item, f"keys[{i}]") for i, item in enumerate(raw)]
    except ConfigurationError as exc:
        raise ConfigurationError(f"the API keys file {path} is invalid: {exc}") from None
    names = [k.name for k in found]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise ConfigurationError(f"the API keys file {path} names {', '.join(doubles)} twice")
    return found


class KeyRing:
    """The configured keys; :meth:`find` resolves a presented secret."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        """Hold ``keys``."""
        self.keys = tuple(keys)

    def find(self, secret: str) -> ApiKey | None:
        """The key whose hash matches ``secret``, compared in constant time, or None."""
        presented = digest(secret)
        match = None
        for key in self.keys:  # every entry is compared: the time does not say which matched
            if hmac.compare_digest(presented, key.sha256):
                match = key
        return match


_cache: dict[Path, tuple[tuple[int, int, int], KeyRing]] = {}


def load(path: Path) -> KeyRing:
    """The keys of ``path`` (re-read when the file changes; none if it does not exist).

    Raises:
        ConfigurationError: the file cannot be read or is invalid.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        return KeyRing(())
    except OSError as exc:
        raise ConfigurationError(f"cannot read the API keys file {path}: {exc}") from None
    stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the API keys file {path}: {exc}") from None
    ring = KeyRing(parse(text, path))
    _cache[path] = (stamp, ring)
    return ring


def _toml(keys: Iterable[ApiKey]) -> str:
    def text(value: str) -> str:  # names are checked: JSON string syntax is TOML's here
        return json.dumps(value, ensure_ascii=False)

    def texts(values: Iterable[str]) -> str:
        return "[" + ", ".join(text(v) for v in values) + "]"

    blocks = ["# Ravel API keys, managed by `ravel keys`: only hashes, never the keys.\n"]
    for key in keys:
        blocks.append(
            f"[[keys]]\nname = {text(key.name)}\nprincipal = {text(key.principal)}\n"
            f"roles = {texts(r.label for r in key.roles)}\ngroups = {texts(key.groups)}\n"
            f"sha256 = {text(key.sha256)}\n"
        )
    return "\n".join(blocks)


def _write(path: Path, keys: list[ApiKey]) -> None:
    if path.suffix == ".json":
        body = (
            json.dumps(
                {
                    "keys": [
                        {
                            "name": k.name,
                            "principal": k.principal,
                            "roles": [r.label for r in k.roles],
                            "groups": list(k.groups),
                            "sha256": k.sha256,
                        }
                        for k in keys
                    ]
                },
                indent=2,
            )
            + "\n"
        )
    else:
        body = _toml(keys)
    parse(body, path)  # never write a file the server would refuse
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(body)
    os.replace(tmp, path)  # atomic: a server reading it sees the old file or the new one


def create(
    path: Path,
    name: str,
    *,
    principal: str | None,
    roles: Iterable[str],
    groups: Iterable[str],
) -> tuple[str, ApiKey]:
    """Add a key to ``path`` and return (the secret, its entry). The secret is not stored.

    Raises:
        ConfigurationError: a key of that name exists, or an argument is invalid.
    """
    keys = list(load(path).keys)
    check_name(name, "the key name")
    if any(k.name == name for k in keys):
        raise ConfigurationError(
            f"a key named {name!r} exists in {path}; pick another name or "
            f"revoke it first (`ravel keys revoke {name}`)"
        )
    secret = new_secret()
    entry = _entry(
        {
            "name": name,
            "principal": principal or name,
            "roles": list(roles),
            "groups": list(groups),
            "sha256": digest(secret),
        },
        f"key {name!r}",
    )
    _write(path, [*keys, entry])
    return secret, entry


def revoke(path: Path, name: str) -> ApiKey:
    """Remove the key ``name`` from ``path``; ConfigurationError if there is none."""
    keys = list(load(path).keys)
    found = next((k for k in keys if k.name == name), None)
    if found is None:
        raise ConfigurationError(f"no key named {name!r} in {path}")
    _write(path, [k for k in keys if k.name != name])
    return found


__all__ = [
    "ApiKey",
    "Caller",
    "KeyRing",
    "Role",
    "create",
    "digest",
    "keys_file",
    "load",
    "new_secret",
    "parse",
    "revoke",
]
