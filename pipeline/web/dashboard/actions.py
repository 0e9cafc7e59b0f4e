"""Decisions and operator actions from the dashboard: each form is first answered with a page
that shows exactly what will be done and asks to confirm it; only the confirmed POST acts.

Every action goes through :mod:`pipeline.api` as the signed-in principal (with its groups for
decisions), so it is authorised and audited like the same call over the HTTP API.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from pipeline import api
from pipeline.principals import authorize
from pipeline.telemetry.logs import run_fields
from pipeline.views import RunView
from pipeline.web.dashboard.base import blueprint, caller, page
from pipeline.web.errors import ApiError
from pipeline.web.keys import Role

log = logging.getLogger("ravel.web.dashboard")

#: the longest text a form field may hold (a patch's size is checked again by Ravel)
MAX_FIELD_CHARS = 1 << 20
_REASON_CHARS = 2000


@dataclass
class Plan:
    """What a confirmation page shows and sends again."""

    action: str
    title: str
    button: str
    fields: dict[str, str] = field(default_factory=dict)
    shown: list[tuple[str, Any]] = field(default_factory=list)
    danger: bool = False


class FormError(Exception):
    """A form value Ravel cannot use; the form is shown again with the message."""


def _text(name: str, limit: int = _REASON_CHARS) -> str:
    value = request.form.get(name, "")
    if len(value) > limit:
        raise ApiError(
            400,
            "invalid_field",
            f"the field {name} is longer than {limit} characters; nothing was done",
        )
    return value.strip()


def parse_patch(text: str) -> dict[str, Any] | None:
    """A state patch from its JSON text (empty: none); :class:`FormError` saying what is wrong."""
    if not text.strip():
        return None

    def refuse(word: str) -> Any:
        raise ValueError(f"{word} is not JSON")

    try:
        value = json.loads(text, parse_constant=refuse)
    except ValueError as exc:
        raise FormError(f"the state patch is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FormError('the state patch must be a JSON object, such as {"vendor": "globex"}')
    return value


def _wait_id() -> str:
    try:
        return str(uuid.UUID(request.form.get("wait_id", "")))
    except ValueError:
        raise ApiError(
            400,
            "invalid_field",
            "the form lacks the id of the wait you were shown; reload the page and try again",
        ) from None


def _confirmed() -> bool:
    return request.form.get("confirm") == "yes"


def _back(run: RunView) -> BaseResponse:
    target = (
        url_for(".approvals")
        if request.form.get("back") == "approvals"
        else url_for(".run_page", run_id=run.id)
    )
    return redirect(target, 303)


def _confirm(run: RunView, plan: Plan, error: str | None = None) -> tuple[str, int]:
    plan.fields.setdefault("back", request.form.get("back", ""))
    page_html = render_template("ravel/confirm.html", run=run, plan=plan, error=error)
    return page_html, 400 if error else 200


def _did(action: str, run_id: str) -> None:
    log.info(
        "dashboard: %s %s run %s", caller().principal, action, run_id, extra=run_fields(run_id)
    )


# -- decisions -------------------------------------------------------------------------------


def _decision(run_id: str, approve: bool) -> Any:
    me = caller()
    wait_id = _wait_id()
    words = _text("note" if approve else "reason")
    run = api.get_run(run_id)
    if not _confirmed():
        wait = run.wait
        if wait is None or wait.id != wait_id:
            raise ApiError(
                409,
                "wait_not_found",
                "the approval you were shown is no longer "
                "open (decided, expired or replaced); nothing was done. Reload "
                "the run's page to see what happened",
            )
        principal = authorize(wait.approvers, me.principal, me.groups)
        shown: list[tuple[str, Any]] = [
            ("Asks", wait.prompt),
            ("Approvers", wait.approvers),
            ("Deadline", wait.expires_at),
        ]
        if wait.data is not None:
            shown.append(("Proposed action", wait.data))
        shown.append(
            ("You decide as", principal or f"{me.principal} (not an approver: Ravel will refuse)")
        )
        if words:
            shown.append(("Note" if approve else "Reason", words))
        verb = "Approve" if approve else "Reject"
        return _confirm(
            run,
            Plan(
                "approve" if approve else "reject",
                f"{verb} this approval?",
                verb,
                {"wait_id": wait_id, "note" if approve else "reason": words},
                shown,
                danger=not approve,
            ),
        )
    if approve:
        result = api.approve(
            run.id,
            me.principal,
            {"note": words} if words else None,
            wait_id=wait_id,
            groups=me.groups,
        )
    else:
        result = api.reject(run.id, me.principal, words or None, wait_id=wait_id, groups=me.groups)
    _did(result.decision, run.id)
    flash(f"{result.decision.capitalize()} as {result.principal or result.actor}.", "ok")
    return _back(run)


@blueprint.post("/runs/<run_id>/approve")
@page(Role.APPROVER)
def approve(run_id: str) -> Any:
    """Approve the wait shown (its ``wait_id``), after confirmation."""
    return _decision(run_id, True)


@blueprint.post("/runs/<run_id>/reject")
@page(Role.APPROVER)
def reject(run_id: str) -> Any:
    """Reject the wait shown, with an optional reason, after confirmation."""
    return _decision(run_id, False)


# -- operator actions ------------------------------------------------------------------------


def _patch_plan(run: RunView, plan: Plan, text: str) -> Any:
    """The confirmation of an action taking a state patch, or the form again if it is bad."""
    try:
        patch = parse_patch(text)
    except FormError as exc:
        plan.fields["patch"] = text
        return _confirm(run, plan, str(exc))
    plan.fields["patch"] = json.dumps(patch) if patch is not None else ""
    plan.shown.append(("State patch", patch if patch is not None else "none"))
    return _confirm(run, plan)


@blueprint.post("/runs/<run_id>/retry")
@page(Role.OPERATOR)
def retry(run_id: str) -> Any:
    """Retry a failed run at the step that failed, optionally patching its state."""
    run = api.get_run(run_id)
    text = _text("patch", MAX_FIELD_CHARS)
    if not _confirmed():
        plan = Plan(
            "retry",
            "Retry this run?",
            "Retry",
            shown=[("Resumes at", f"step {run.step} (seq {run.seq})"), ("Its error", run.error)],
        )
        return _patch_plan(run, plan, text)
    try:
        patch = parse_patch(text)
    except FormError as exc:
        raise ApiError(400, "invalid_field", str(exc)) from None
    api.retry_run(run.id, caller().principal, state_patch=patch)
    _did("retried", run.id)
    flash("Retried" + (f", state patched ({', '.join(patch)})." if patch else "."), "ok")
    return _back(run)


@blueprint.post("/runs/<run_id>/cancel")
@page(Role.OPERATOR)
def cancel(run_id: str) -> Any:
    """Cancel a live run with a reason."""
    run = api.get_run(run_id)
    reason = _text("reason")
    if not _confirmed():
        return _confirm(
            run,
            Plan(
                "cancel",
                "Cancel this run?",
                "Cancel the run",
                {"reason": reason},
                [("Status now", run.status.value), ("Reason", reason or "cancelled by operator")],
                danger=True,
            ),
        )
    api.cancel_run(run.id, caller().principal, reason or "cancelled by operator")
    _did("cancelled", run.id)
    flash("Cancelled.", "ok")
    return _back(run)


@blueprint.post("/runs/<run_id>/fork")
@page(Role.OPERATOR)
def fork(run_id: str) -> Any:
    """Start a new run from the checkpoint before a step of this one."""
    run = api.get_run(run_id)
    raw_seq = request.form.get("seq", "").strip()
    if not (raw_seq.isascii() and raw_seq.isdigit() and len(raw_seq) < 10):
        raise ApiError(400, "invalid_field", "choose the step seq to fork from (a number)")
    seq = int(raw_seq)
    text = _text("patch", MAX_FIELD_CHARS)
    if not _confirmed():
        plan = Plan(
            "fork",
            "Fork this run?",
            "Fork",
            {"seq": raw_seq},
            [
                ("Starts a new run from", f"the checkpoint before step seq {seq}"),
                (
                    "Steps before it",
                    "not run again: their LLM calls and effects are not paid again",
                ),
            ],
        )
        return _patch_plan(run, plan, text)
    try:
        patch = parse_patch(text)
    except FormError as exc:
        raise ApiError(400, "invalid_field", str(exc)) from None
    new_id = api.fork_run(run.id, seq, caller().principal, patch)
    _did(f"forked (from seq {seq}, new run {new_id})", run.id)
    flash(f"Forked from step seq {seq} of run {run.id}.", "ok")
    return redirect(url_for(".run_page", run_id=new_id), 303)


__all__ = ["FormError", "Plan", "parse_patch"]
