"""The pages of approval links (:mod:`pipeline.approval_links`): server-rendered HTML.

``GET /runs/<run_id>/link/<token>`` shows what is asked and a form; it changes nothing (mail
scanners and link previews fetch links). Only ``POST /runs/<run_id>/link`` decides, with the
token in the form body: the token is the credential, so no cookie or session is involved and
another site cannot forge the form without knowing it (that is the CSRF protection; SameSite
does not apply, as these pages set no cookie). Answers are never cached, never framed, and
send no Referer (the token is in the page's URL).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, render_template_string, request, url_for

from pipeline import errors
from pipeline.approval_links import (
    LinkExpired,
    LinkNotFound,
    LinkState,
    LinkUsed,
    inspect_link,
    use_link,
)
from pipeline.views import WaitView
from pipeline.web.errors import unexpected

log = logging.getLogger("ravel.web")

blueprint = Blueprint("ravel_links", __name__)

#: A form with a token, a decision and a reason is small.
MAX_FORM_BYTES = 16 * 1024
MAX_REASON_CHARS = 2000

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">
<title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;
line-height:1.45}pre{background:#f4f4f4;padding:.75rem;overflow:auto;white-space:pre-wrap}
dt{font-weight:600}button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}
.prompt{white-space:pre-wrap}</style></head>
<body><h1>{{ title }}</h1>
{% if message %}<p id="message">{{ message }}</p>{% endif %}
{% if state %}<dl>
<dt>Run</dt><dd><code>{{ state.run.id }}</code> ({{ state.run.workflow }},
step {{ state.run.step }}, {{ state.run.status.value }})</dd>
<dt>You decide as</dt><dd>{{ state.principal }}</dd>
<dt>Link valid until</dt><dd>{{ when(state.expires_at) }}</dd>
{% if state.wait %}<dt>Deadline</dt><dd>{{ when(state.wait.expires_at) }}</dd>
<dt>Approvers</dt><dd>{{ state.wait.approvers | join(", ") }}</dd>{% endif %}
</dl>
{% if state.wait %}<h2>Question</h2><p class="prompt">{{ state.wait.prompt or "" }}</p>
{% if proposal %}<h2>Proposed action</h2><pre>{{ proposal }}</pre>{% endif %}{% endif %}
{% endif %}
{% if form %}<form method="post" action="{{ action }}">
<input type="hidden" name="token" value="{{ token }}">
<p><label>Reason (sent with a rejection, optional)<br>
<textarea name="reason" rows="3" cols="60" maxlength="{{ max_reason }}"></textarea></label></p>
<p><button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="reject">Reject</button></p>
</form>{% endif %}
</body></html>
"""

# Closed questions, refused people and bad requests: the page says which, with this status.
_REFUSALS: tuple[tuple[type[errors.PipelineError], int, str], ...] = (
    (LinkNotFound, 404, "Link not valid"),
    (LinkUsed, 410, "Link already used"),
    (LinkExpired, 410, "Link expired"),
    (errors.NotAuthorized, 403, "Not allowed"),
    (errors.WaitAlreadyDecided, 409, "Approval already decided"),
    (errors.WaitNotFound, 409, "Approval no longer open"),
    (errors.NotWaiting, 409, "Approval no longer open"),
    (errors.InvalidInput, 400, "Bad request"),
    (errors.StoreUnavailable, 503, "Try again later"),
    (errors.DatabaseNotMigrated, 503, "Try again later"),
)


def _when(at: datetime | None) -> str:
    return "none" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"


def _proposal(wait: WaitView | None) -> str | None:
    if wait is None or not wait.data:
        return None
    return json.dumps(wait.data, indent=2, ensure_ascii=False, sort_keys=True)


def _page(
    title: str,
    status: int,
    *,
    message: str | None = None,
    state: LinkState | None = None,
    token: str | None = None,
) -> Response:
    form = state is not None and state.usable and token is not None
    html = render_template_string(
        _PAGE,
        title=title,
        message=message,
        state=state,
        when=_when,
        form=form,
        proposal=_proposal(state.wait if state else None),
        token=token,
        max_reason=MAX_REASON_CHARS,
        action=url_for(".decide", run_id=state.run.id) if form and state else None,
    )
    return Response(html, status, mimetype="text/html")


def _run_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise LinkNotFound(
            "this approval link is not valid: check that it was copied whole, or ask for a new one"
        ) from None


def _refusal(exc: errors.PipelineError, state: LinkState | None = None) -> Response:
    for cls, status, title in _REFUSALS:
        if isinstance(exc, cls):
            if status >= 500:
                log.warning("approval link: %s", exc)
            return _page(title, status, message=str(exc), state=state)
    raise exc


@blueprint.get("/runs/<run_id>/link/<token>")
def show(run_id: str, token: str) -> Response:
    """The confirmation page: what is asked, and the form that decides. Changes nothing."""
    try:
        state = inspect_link(_run_id(run_id), token)
    except errors.PipelineError as exc:
        return _refusal(exc)
    if state.usable:
        return _page("Approval requested", 200, state=state, token=token)
    # Gone for good (used, expired): 410; the question itself was closed otherwise: 409.
    status = 409 if state.status == "closed" else 410
    return _page("This link cannot decide", status, message=state.why_not, state=state)


def _form() -> dict[str, str]:
    if request.content_length is None or request.content_length > MAX_FORM_BYTES:
        raise errors.InvalidInput(
            f"send the form as it is shown (at most {MAX_FORM_BYTES} bytes, with a Content-Length)"
        )
    if request.mimetype != "application/x-www-form-urlencoded":
        raise errors.InvalidInput("send the form as it is shown (a urlencoded form)")
    return {k: request.form.get(k, "") for k in ("token", "decision", "reason")}


@blueprint.post("/runs/<run_id>/link")
def decide(run_id: str) -> Response:
    """Decide with the token in the form body: once, as the link's principal."""
    try:
        form = _form()
        decision = {"approve": "approved", "reject": "rejected"}.get(form["decision"])
        if decision is None:
            raise errors.InvalidInput("choose Approve or Reject")
        reason = form["reason"].strip()[:MAX_REASON_CHARS] or None
        result = use_link(
            _run_id(run_id), form["token"], decision, reason if decision == "rejected" else None
        )
    except errors.PipelineError as exc:
        return _refusal(exc)
    verb = "Approved" if result.decision == "approved" else "Rejected"
    under = f" (as {result.principal})" if result.principal != result.actor else ""
    at = _when(result.at)
    return _page(
        verb,
        200,
        message=f"{verb} by {result.actor}{under} at {at}. The run goes "
        "on; this link cannot be used again.",
    )


@blueprint.after_request
def _headers(response: Response) -> Response:
    # The URL holds a secret: never cached, framed (clickjacking) or sent on as a Referer.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return response


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> Any:
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException):
        return _page(exc.name or "Error", exc.code or 500, message=exc.description)
    found = unexpected(request.method, request.path, exc)
    return _page("Something went wrong", 500, message=found["message"])


__all__ = ["MAX_FORM_BYTES", "blueprint"]
