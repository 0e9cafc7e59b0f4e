"""Who the signed-in Django user is to Ravel: a principal, groups and a role.

The principal is the username (the actor in the run's history); the groups are the user's
Django groups, matched against a wait's ``group:...`` approvers. Nothing in a request can
name either: they come from ``request.user`` only.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from pipeline.contrib.django.conf import Options, options
from pipeline.web.keys import Caller, Role


def _holds(user: Any, permission: str | None, *, unset: bool) -> bool:
    if permission is None:
        return unset
    return bool(user.has_perm(permission))


def role_of(user: Any, opts: Options | None = None) -> Role | None:
    """The highest role ``user`` holds under the ``RAVEL`` settings (None: none)."""
    opts = opts or options()
    if not user.is_authenticated or not user.is_active:
        return None
    if _holds(user, opts.operate_permission, unset=bool(user.is_staff)):
        return Role.OPERATOR
    if _holds(user, opts.approve_permission, unset=True):
        return Role.APPROVER
    if _holds(user, opts.view_permission, unset=True):
        return Role.VIEWER
    return None


def groups_of(user: Any) -> tuple[str, ...]:
    """The names of ``user``'s Django groups (none for a user model without groups)."""
    groups = getattr(user, "groups", None)
    if groups is None:
        return ()
    return tuple(sorted(groups.values_list("name", flat=True)))


def caller_of(request: HttpRequest) -> Caller | None:
    """The signed-in user as a :class:`Caller`, or None (anonymous, inactive, or no role)."""
    user = request.user
    role = role_of(user)
    if role is None:
        return None
    return Caller(user.get_username(), role, groups_of(user))


__all__ = ["caller_of", "groups_of", "role_of"]
