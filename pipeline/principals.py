"""Who may decide an approval: principals named on the wait, matched against a person.

A wait's ``approvers`` name principals: users (``alice`` or ``user:alice``) and groups
(``group:finance``). A decision is always made by a person (the actor); it is accepted when
that person is named, or belongs to a named group. Group membership is the caller's to
vouch for (Django groups, API key configuration, a Slack user mapping): it is passed in by
the web layer, never read from a request body.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

USER = "user:"
GROUP = "group:"


def person(actor: str) -> str:
    """The person's name without a ``user:`` prefix."""
    return actor.removeprefix(USER)


def group_names(groups: Iterable[str]) -> frozenset[str]:
    """Group names without a ``group:`` prefix."""
    return frozenset(g.removeprefix(GROUP) for g in groups)


def authorize(approvers: Sequence[str], actor: str, groups: Iterable[str] = ()) -> str | None:
    """The principal (as written on the wait) under which ``actor`` may decide, or None.

    A principal naming the person wins over a group, so the history says "alice" rather
    than "group:finance" when both would match.
    """
    who = person(actor)
    for principal in approvers:
        if not principal.startswith(GROUP) and person(principal) == who:
            return principal
    member_of = group_names(groups)
    for principal in approvers:
        if principal.startswith(GROUP) and principal.removeprefix(GROUP) in member_of:
            return principal
    return None


def valid(principal: object) -> bool:
    """Whether a wait's approvers entry is a usable principal."""
    if not isinstance(principal, str) or not principal.strip() or len(principal) > 200:
        return False
    return principal not in (USER, GROUP)
