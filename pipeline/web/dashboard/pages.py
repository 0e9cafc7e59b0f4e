"""The dashboard's pages: sign-in, runs, a run, approvals, workers and the reaper."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from pipeline import api
from pipeline.api import _view
from pipeline.principals import authorize
from pipeline.settings import get_settings
from pipeline.status import RunStatus
from pipeline.store import dashboard as store
from pipeline.store import forks, get_db, health, journal
from pipeline.store import runs as run_store
from pipeline.store.db_errors import actionable
from pipeline.views import RunView
from pipeline.web.dashboard import session as signed
from pipeline.web.dashboard import timeline
from pipeline.web.dashboard.base import blueprint, caller, page, safe_next
from pipeline.web.errors import ApiError
from pipeline.web.keys import Role
from pipeline.web.pages import approvals_page, decode_cursor, encode_cursor, parse_status

#: runs per page of the runs list
PAGE_SIZE = 50
#: statuses whose pages refresh themselves
LIVE = frozenset({"pending", "running", "sleeping", "waiting"})


@blueprint.get("/")
def home() -> BaseResponse:
    """The runs list."""
    return redirect(url_for(".runs"))


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Sign in with an API key (a POST carries the CSRF token of the page's session).

    Someone the host app's identity hook names (its own login, e.g. a Django user) is sent
    on: no API key signs in beside the host's user.
    """
    target = safe_next(request.values.get("next"))
    if signed.host_caller() is not None:
        return redirect(target, 303)
    if request.method == "GET":
        if signed.current_caller() is not None:
            return redirect(target)
        return render_template("ravel/login.html", next=target, failed=False)
    if signed.sign_in(request.form.get("key", "")) is None:
        return render_template("ravel/login.html", next=target, failed=True), 401
    return redirect(target, 303)


@blueprint.post("/logout")
def logout() -> BaseResponse:
    """End the session (one the host app signed in is ended by the host's own sign-out)."""
    if signed.host_caller() is not None:
        flash("You are signed in by this site's own login: sign out there.", "info")
        return redirect(url_for(".runs"), 303)
    signed.sign_out()
    flash("Signed out.", "info")
    return redirect(url_for(".login"), 303)


# -- runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunQuery:
    """The runs page's filters, as given in its URL."""

    where: store.RunFilter
    cursor: str | None
    args: dict[str, str]


def _moment(name: str) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        found = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            400,
            "invalid_query",
            f"{name} must be a date and time such as 2026-01-31T09:30 (UTC), not {raw[:40]!r}",
        ) from None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found


def _run_query() -> RunQuery:
    text = request.args.get("q", "").strip()[:200] or None
    workflow = request.args.get("workflow", "").strip()[:200] or None
    status = parse_status(request.args.get("status") or None)
    where = store.RunFilter(status, workflow, _moment("since"), _moment("until"), text)
    args = {
        k: v
        for k, v in request.args.items()
        if k in ("q", "workflow", "status", "since", "until") and v
    }
    return RunQuery(where, request.args.get("cursor") or None, args)


@actionable
def _runs(query: RunQuery) -> tuple[list[RunView], str | None, list[str]]:
    db = get_db()
    before = decode_cursor(query.cursor) if query.cursor else None
    found = store.search_runs(db, query.where, PAGE_SIZE + 1, before=before)
    page_runs = [_view(r, w) for r, w in found[:PAGE_SIZE]]
    more = len(found) > PAGE_SIZE and page_runs
    names = sorted({w.name for w in run_store.list_workflows(db)})
    return page_runs, encode_cursor(page_runs[-1]) if more else None, names


def _fragment(html: str, live: bool, status: str | None = None) -> Response:
    response = Response(html)
    response.headers["X-Ravel-Live"] = "1" if live else "0"
    if status is not None:
        response.headers["X-Ravel-Status"] = status
    return response


@blueprint.get("/runs")
@page(Role.VIEWER)
def runs() -> str:
    """Runs, newest first: filters, search, cursor pages, live rows."""
    query = _run_query()
    found, cursor, names = _runs(query)
    return render_template(
        "ravel/runs.html",
        runs=found,
        next_cursor=cursor,
        query=query,
        workflows=names,
        statuses=[s.value for s in RunStatus],
        live=any(r.status.value in LIVE for r in found),
    )


@blueprint.get("/runs/rows")
@page(Role.VIEWER)
def runs_rows() -> Response:
    """The rows of the runs list, for its live refresh."""
    query = _run_query()
    found, _, _ = _runs(query)
    html = render_template("ravel/_rows.html", runs=found)
    return _fragment(html, any(r.status.value in LIVE for r in found))


# -- one run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPage:
    """Everything the run page shows."""

    run: RunView
    blocks: list[timeline.StepBlock]
    history: list[Any]
    audit: Any
    forks: list[tuple[str, int]]
    decide_as: str | None
    fork_seqs: list[int]


@actionable
def _run_page(run_id: str) -> RunPage:
    run = api.get_run(run_id)
    db = get_db()
    history = api.run_history(run.id)
    blocks = timeline.build(
        run,
        api.run_steps(run.id),
        store.checkpoints(db, run.id),
        journal.usage_by_call(db, run.id),
        history,
    )
    me = caller()
    decide_as = None
    if run.wait is not None and run.wait.kind == "approval":
        decide_as = authorize(run.wait.approvers, me.principal, me.groups)
    last = run.seq - 1 if run.status is RunStatus.SUCCEEDED else run.seq
    seqs = sorted({b.seq for b in blocks if b.seq <= last} | {0})
    return RunPage(
        run, blocks, history, api.verify_audit(run.id), forks.forks_of(db, run.id), decide_as, seqs
    )


@blueprint.get("/runs/<run_id>")
@page(Role.VIEWER)
def run_page(run_id: str) -> str:
    """A run: summary, open wait, timeline with state diffs, history and its verification."""
    found = _run_page(run_id)
    return render_template("ravel/run.html", p=found, live=found.run.status.value in LIVE)


@blueprint.get("/runs/<run_id>/live")
@page(Role.VIEWER)
def run_live(run_id: str) -> Response:
    """A changing part of a run page, for its live refresh: ``part=head`` (summary and open
    wait; one read) or ``part=body`` (timeline, state, history)."""
    part = request.args.get("part", "body")
    if part not in ("head", "body"):
        raise ApiError(400, "invalid_query", "part must be head or body")
    if part == "head":
        run = api.get_run(run_id)
        found = RunPage(run, [], [], None, forks.forks_of(get_db(), run.id), None, [])
    else:
        found = _run_page(run_id)
    status = found.run.status.value
    html = render_template(f"ravel/_run_{part}.html", p=found)
    return _fragment(html, status in LIVE, status)


# -- approvals and workers -------------------------------------------------------------------


@blueprint.get("/approvals")
@page(Role.APPROVER)
def approvals() -> str:
    """Open approvals the signed-in principal (or one of its groups) may decide."""
    cursor = request.args.get("cursor") or None
    workflow = request.args.get("workflow", "").strip()[:200] or None
    found, more = approvals_page(
        caller(), workflow, PAGE_SIZE, decode_cursor(cursor) if cursor else None
    )
    return render_template(
        "ravel/approvals.html", approvals=found, next_cursor=more, workflow=workflow
    )


@actionable
def _health() -> dict[str, Any]:
    db = get_db()
    reapers = health.reapers(db)
    settings = get_settings()
    limit = health.reaper_silence_limit(settings.reaper_interval)
    return {
        "workers": health.workers(db),
        "reapers": reapers,
        "workflows": run_store.list_workflows(db),
        "gone_after": health.WORKER_GONE_AFTER,
        "silence_limit": limit,
        "reaper_silent": not reapers or min(r.age for r in reapers) > limit,
    }


@blueprint.get("/workers")
@page(Role.VIEWER)
def workers() -> str:
    """Which workers serve which workflow versions, last seen, and the reaper's last pass."""
    return render_template("ravel/workers.html", **_health())


__all__ = ["LIVE", "PAGE_SIZE"]
