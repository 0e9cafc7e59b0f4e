"""Approval links for people without Slack or an API key: ``ravel approvals link RUN --for
alice`` prints a URL to send them.

A link carries a secret token (256 random bits) bound to one wait of one run and to one
principal, who decides as that principal with the groups the link's creator vouched for.
Only the token's SHA-256 is stored; the link expires with the wait (or sooner) and decides
once. Opening it (GET) shows what is asked and changes nothing: only the form it shows,
POSTed with the token in its body, decides (mail scanners and link previews fetch links).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline import api
from pipeline.errors import (
    InvalidInput,
    NotAuthorized,
    NotWaiting,
    PipelineError,
    StoreUnavailable,
    WaitNotFound,
)
from pipeline.principals import authorize, group_names
from pipeline.store import approval_links as store
from pipeline.store import get_db
from pipeline.views import RunView, WaitResult, WaitView
from pipeline.web.keys import check_name

#: How long a link lives when its wait has no deadline (or a later one).
DEFAULT_VALID_FOR = timedelta(days=7)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


class LinkNotFound(PipelineError, LookupError):
    """No link has that token (or it belongs to another run)."""


class LinkUsed(PipelineError):
    """The link was used already: each link decides once."""


class LinkExpired(PipelineError):
    """The link's time ran out."""


@dataclass(frozen=True)
class CreatedLink:
    """A new link. ``token`` is shown once and stored only as a hash.

    Attributes:
        url: the link to send (None without a base URL: build it with :func:`link_path`).
        token: the secret.
        run_id, wait_id: what it decides.
        principal: who decides with it.
        expires_at: when it stops working.
    """

    url: str | None
    token: str
    run_id: str
    wait_id: str
    principal: str
    expires_at: datetime


@dataclass(frozen=True)
class LinkState:
    """What a link shows: the run and its wait, and whether the link can still decide.

    Attributes:
        run: the run as stored now.
        wait: the link's wait, if it is still the run's open wait.
        principal: who decides with the link.
        status: ``open`` (a POST may decide now), ``used``, ``expired``, or ``closed``
            (the wait was decided, expired or cancelled otherwise).
        why_not: why it cannot decide, for the page (None when open).
        expires_at: when the link stops working.
    """

    run: RunView
    wait: WaitView | None
    principal: str
    status: str
    why_not: str | None
    expires_at: datetime

    @property
    def usable(self) -> bool:
        """Whether a POST may decide now."""
        return self.status == "open"


def digest(token: str) -> str:
    """The SHA-256 (hex) of a token, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def link_path(run_id: str, token: str) -> str:
    """The link's path under where the web blueprint is mounted."""
    return f"/runs/{run_id}/link/{token}"


def create_link(
    run_id: str,
    principal: str,
    *,
    groups: Iterable[str] = (),
    created_by: str,
    wait_id: str | None = None,
    valid_for: timedelta = DEFAULT_VALID_FOR,
    base_url: str | None = None,
) -> CreatedLink:
    """A link with which ``principal`` decides the run's open approval.

    Args:
        run_id: the run.
        principal: the person who will decide (``alice``); must be among the wait's
            approvers by name or through ``groups``.
        groups: the person's groups, as the creator vouches for them.
        created_by: who creates the link, for the record.
        wait_id: the wait it decides (default: the run's open approval now).
        valid_for: the link's lifetime, cut to the wait's deadline.
        base_url: where the web blueprint is reachable (``RAVEL_PUBLIC_URL``).

    Raises:
        NotWaiting: the run has no open approval. WaitNotFound: ``wait_id`` is not it.
        NotAuthorized: the principal may not decide it (no link is made).
    """
    who = check_name(principal, "the principal")
    vouched = sorted(group_names(check_name(g, "a group") for g in groups))
    if valid_for <= timedelta(0):
        raise InvalidInput("a link must be valid for a positive time")
    run = api.get_run(run_id)
    wait = run.wait
    if wait is None or wait.kind != "approval":
        raise NotWaiting(f"run {run.id} has no open approval to make a link for")
    if wait_id is not None and wait_id != wait.id:
        raise WaitNotFound(
            f"the wait {wait_id} is not the open approval of run {run.id} (that is {wait.id})"
        )
    if authorize(wait.approvers, who, vouched) is None:
        raise NotAuthorized(
            f"{who!r} may not decide this approval (approvers: "
            f"{', '.join(wait.approvers) or 'nobody'}); no link was made"
        )
    db = get_db()
    expires = db.now() + valid_for
    if wait.expires_at is not None:
        expires = min(expires, wait.expires_at)
    token = secrets.token_urlsafe(32)
    store.add(db, digest(token), wait.id, run.id, who, vouched, created_by, expires)
    url = f"{base_url.rstrip('/')}{link_path(run.id, token)}" if base_url else None
    return CreatedLink(url, token, run.id, wait.id, who, expires)


def _record(run_id: str, token: str) -> store.LinkRecord:
    """The link of ``token`` if it belongs to ``run_id``; LinkNotFound otherwise (a
    malformed token is not looked up)."""
    found = store.find(get_db(), digest(token)) if _TOKEN.match(token or "") else None
    if found is None or found.run_id != run_id:
        raise LinkNotFound(
            "this approval link is not valid: check that it was copied whole, or ask for a new one"
        )
    return found


def _status(link: store.LinkRecord, wait: WaitView | None) -> tuple[str, str | None]:
    """(status, why it cannot decide) of a link whose wait is ``wait`` if still open."""
    if link.used_at is not None:
        return "used", (
            f"this link was already used: {link.decision} at "
            f"{link.used_at:%Y-%m-%d %H:%M:%S} UTC. A link decides once"
        )
    if link.expired:
        return "expired", (
            f"this link expired at {link.expires_at:%Y-%m-%d %H:%M:%S} UTC; ask for a new one"
        )
    if wait is None:
        return "closed", "this approval is no longer open: it was decided, expired or cancelled"
    return "open", None


def inspect_link(run_id: str, token: str) -> LinkState:
    """What the link at ``/runs/<run_id>/link/<token>`` shows; changes nothing.

    Raises:
        LinkNotFound: no such link for this run.
    """
    link = _record(run_id, token)
    run = api.get_run(link.run_id)
    wait = run.wait if run.wait is not None and run.wait.id == link.wait_id else None
    status, why = _status(link, wait)
    return LinkState(run, wait, link.principal, status, why, link.expires_at)


def use_link(run_id: str, token: str, decision: str, reason: str | None = None) -> WaitResult:
    """Decide the link's wait (``approved`` or ``rejected``) as its principal, once.

    Raises:
        LinkNotFound: no such link for this run. LinkUsed, LinkExpired: it cannot decide.
        WaitAlreadyDecided, WaitExpired, WaitNotFound, NotAuthorized: as :func:`approve`.
    """
    if decision not in ("approved", "rejected"):
        raise InvalidInput("decision must be 'approved' or 'rejected'")
    link = _record(run_id, token)
    hashed = digest(token)
    if not store.use(get_db(), hashed, decision):
        status, why = _status(_record(run_id, token), None)
        raise (LinkUsed if status == "used" else LinkExpired)(why or "this link cannot decide")
    groups = link.groups
    try:
        if decision == "approved":
            return api.approve(
                link.run_id, link.principal, None, wait_id=link.wait_id, groups=groups
            )
        return api.reject(link.run_id, link.principal, reason, wait_id=link.wait_id, groups=groups)
    except StoreUnavailable:
        # Nothing was decided: let the person try again when the database is back (if it
        # is still unreachable, the link stays used and the wait stays open).
        with contextlib.suppress(Exception):
            store.give_back(get_db(), hashed)
        raise


__all__ = [
    "DEFAULT_VALID_FOR",
    "CreatedLink",
    "LinkExpired",
    "LinkNotFound",
    "LinkState",
    "LinkUsed",
    "create_link",
    "digest",
    "inspect_link",
    "link_path",
    "use_link",
]
