"""The ``RAVEL`` block of a Django project's settings, checked when the app is ready.

Ravel's own settings (database, broker, ...) stay in the environment (``RAVEL_*``), shared
with its workers; this block holds only what the Django pages and routes need::

    RAVEL = {
        "VIEW_PERMISSION": None,      # see runs and their history; None: every signed-in user
        "APPROVE_PERMISSION": None,   # try to decide approvals; None: every signed-in user
        "OPERATE_PERMISSION": None,   # retry, cancel, send events; None: staff users
        "BASE_TEMPLATE": "ravel/base.html",  # the layout the pages extend
    }

A permission is Django's ``"app_label.codename"`` (superusers hold every one). Each role
includes the ones before it, as with the HTTP API's keys. Whoever may try to decide, the
wait's approvers still say who may: the user by name, or one of their groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Options:
    """The checked ``RAVEL`` block (see the module's documentation)."""

    view_permission: str | None = None
    approve_permission: str | None = None
    operate_permission: str | None = None
    base_template: str = "ravel/base.html"


_KEYS = {
    "VIEW_PERMISSION": "view_permission",
    "APPROVE_PERMISSION": "approve_permission",
    "OPERATE_PERMISSION": "operate_permission",
    "BASE_TEMPLATE": "base_template",
}
_loaded: Options | None = None


def parse(block: Any) -> Options:
    """The options of a ``RAVEL`` block; :class:`ImproperlyConfigured` naming what is wrong."""
    if block is None:
        return Options()
    if not isinstance(block, dict):
        raise ImproperlyConfigured(f"settings.RAVEL must be a dict, not {type(block).__name__}")
    unknown = sorted(str(k) for k in block if k not in _KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"settings.RAVEL has unknown keys {', '.join(unknown)}; "
            f"the keys are: {', '.join(_KEYS)}"
        )
    values: dict[str, Any] = {}
    for key, name in _KEYS.items():
        if key not in block:
            continue
        value = block[key]
        if key == "BASE_TEMPLATE" and not (isinstance(value, str) and value):
            raise ImproperlyConfigured("settings.RAVEL['BASE_TEMPLATE'] must be a template name")
        if key.endswith("_PERMISSION") and not (
            value is None or (isinstance(value, str) and value.count(".") == 1)
        ):
            raise ImproperlyConfigured(
                f"settings.RAVEL[{key!r}] must be None or a permission "
                f"'app_label.codename', not {value!r}"
            )
        values[name] = value
    return Options(**values)


def load() -> Options:
    """Read and check ``settings.RAVEL`` (done once, when the app is ready)."""
    global _loaded
    _loaded = parse(getattr(settings, "RAVEL", None))
    return _loaded


def options() -> Options:
    """The options read when the app was ready (read now if it was not)."""
    return _loaded if _loaded is not None else load()


__all__ = ["Options", "load", "options", "parse"]
