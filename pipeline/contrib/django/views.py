"""Pages for people: a run's status, an approval to decide, the approvals waiting for you.

A page needs a signed-in user (others are sent to ``settings.LOGIN_URL``) with the role the
``RAVEL`` settings give them. The approval page shows the proposed action on GET and decides
only on a POST of its form, which carries Django's CSRF token and the id of the wait shown
(a decision from a stale page is refused, never applied to a newer wait).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from pipeline import api
from pipeline.contrib.django.conf import options
from pipeline.contrib.django.identity import caller_of
from pipeline.errors import PipelineError, RunNotFound
from pipeline.principals import authorize
from pipeline.views import HistoryEvent, RunView
from pipeline.web.errors import status_of
from pipeline.web.keys import Caller, Role
from pipeline.web.pages import approvals_page

_DECISIONS = ("wait.approved", "wait.rejected", "wait.expired")
#: Longest note or reason a form may send (the audit log keeps it).
MAX_NOTE = 2000


class _SignIn(Exception):
    """The page needs a signed-in user: answered with a redirect to the login page."""


def _caller(request: HttpRequest, role: Role) -> Caller:
    if not request.user.is_authenticated:
        raise _SignIn()
    caller = caller_of(request)
    if caller is None or caller.role < role:
        raise PermissionDenied(f"this page needs the Ravel role {role.label}")
    return caller


def _pretty(value: Any) -> str | None:
    return (
        None if value is None else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    )


def _row(event: HistoryEvent) -> dict[str, Any]:
    found = event.to_json()
    data = event.data if isinstance(event.data, dict) else {}
    return {**found, "as": data.get("as"), "data_json": _pretty(event.data)}


def _context(run: RunView, events: list[HistoryEvent], caller: Caller) -> dict[str, Any]:
    wait = run.wait
    decides_as = None
    if wait is not None and wait.kind == "approval" and caller.role >= Role.APPROVER:
        decides_as = authorize(wait.approvers, caller.principal, caller.groups)
    decided = [e for e in events if e.kind in _DECISIONS]
    return {
        "ravel_base": options().base_template,
        "run": run.to_json(),
        "state_json": _pretty(run.state),
        "result_json": _pretty(run.result),
        "wait_data_json": _pretty(wait.data if wait else None),
        "history": [_row(e) for e in events],
        "last_decision": _row(decided[-1]) if decided else None,
        "caller": caller,
        "decides_as": decides_as,
        "max_note": MAX_NOTE,
    }


def _load(run_id: str) -> tuple[RunView, list[HistoryEvent]]:
    try:
        return api.get_run(run_id), api.run_history(run_id)
    except RunNotFound as exc:
        raise Http404(str(exc)) from exc


def _problem(
    request: HttpRequest,
    exc: PipelineError,
    context: dict[str, Any] | None = None,
    template: str = "ravel/problem.html",
) -> HttpResponse:
    status = status_of(exc)
    if status is None:
        raise exc  # a bug: Django's 500 handling (logged, no traceback unless DEBUG)
    if status == 404:
        raise Http404(str(exc)) from exc
    page = {"ravel_base": options().base_template, **(context or {}), "error": str(exc)}
    return render(request, template, page, status=status)


@require_GET
def run_page(request: HttpRequest, run_id: str) -> HttpResponse:
    """A run's status, its open wait and its history."""
    try:
        caller = _caller(request, Role.VIEWER)
        run, events = _load(run_id)
    except _SignIn:
        return redirect_to_login(request.get_full_path())
    except PipelineError as exc:
        return _problem(request, exc)
    return render(request, "ravel/run.html", _context(run, events, caller))


def _form(request: HttpRequest) -> tuple[str, str, str | None]:
    """The decision form's (wait id, decision, note); ValueError saying what is wrong."""
    try:
        wait_id = str(uuid.UUID(request.POST.get("wait_id", "")))
    except ValueError:
        raise ValueError("the form lacks the id of the wait it showed; reload the page") from None
    decision = request.POST.get("decision", "")
    if decision not in ("approve", "reject"):
        raise ValueError("choose Approve or Reject")
    note = request.POST.get("note", "").strip()
    if len(note) > MAX_NOTE:
        raise ValueError(f"the note is longer than {MAX_NOTE} characters; shorten it")
    return wait_id, decision, note or None


def _decide(request: HttpRequest, caller: Caller, run_id: str) -> None:
    wait_id, decision, note = _form(request)
    if decision == "approve":
        api.approve(
            run_id,
            caller.principal,
            {"note": note} if note else None,
            wait_id=wait_id,
            groups=caller.groups,
        )
    else:
        api.reject(run_id, caller.principal, note, wait_id=wait_id, groups=caller.groups)


@require_http_methods(["GET", "POST"])
def approval_page(request: HttpRequest, run_id: str) -> HttpResponse:
    """GET: the approval and what it would do. POST (its form): approve or reject it."""
    try:
        caller = _caller(request, Role.APPROVER)
        run, events = _load(run_id)
    except _SignIn:
        return redirect_to_login(request.get_full_path())
    except PipelineError as exc:
        return _problem(request, exc)
    context = _context(run, events, caller)
    if request.method == "GET":
        return render(request, "ravel/approval.html", context)
    try:
        _decide(request, caller, run_id)
    except ValueError as exc:
        return render(request, "ravel/approval.html", {**context, "error": str(exc)}, status=400)
    except PipelineError as exc:
        # Shown on the page as it is now (already decided, expired, not yours ...).
        now = _context(*_load(run_id), caller)
        return _problem(request, exc, now, "ravel/approval.html")
    ns = request.resolver_match.namespace if request.resolver_match else None
    return redirect(reverse("ravel:run", args=[run.id], current_app=ns))


@require_GET
def approvals_list(request: HttpRequest) -> HttpResponse:
    """The open approvals the user, by name or through a group, may decide."""
    try:
        caller = _caller(request, Role.APPROVER)
        found, more = approvals_page(caller, None, 100, None)
    except _SignIn:
        return redirect_to_login(request.get_full_path())
    except PipelineError as exc:
        return _problem(request, exc)
    rows = [{**a.to_json(), "wait": a.run.wait.to_json() if a.run.wait else None} for a in found]
    return render(
        request,
        "ravel/approvals.html",
        {
            "ravel_base": options().base_template,
            "approvals": rows,
            "more": more is not None,
            "caller": caller,
        },
    )


__all__ = ["approval_page", "approvals_list", "run_page"]
