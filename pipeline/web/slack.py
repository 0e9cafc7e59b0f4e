"""Slack's interactivity endpoint: the Approve and Reject buttons of approval messages.

``POST /slack/actions`` (under the blueprint's prefix) is the Request URL of the Slack
app's Interactivity settings. Each request is checked with slack_sdk's
:class:`~slack_sdk.signature.SignatureVerifier` over the raw body (``SLACK_SIGNING_SECRET``;
a timestamp more than 5 minutes off is refused), the Slack user is mapped to a principal
and groups (:mod:`pipeline.slack.users`), and the click decides the wait its button
carries through :func:`pipeline.approve` / :func:`pipeline.reject`, the same race-safe path
as the HTTP API. Slack gets its 200 at once; the message is updated through the click's
``response_url`` from a background thread (who decided and when, or why not).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Response, current_app, request
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient
from werkzeug.exceptions import HTTPException

from pipeline import api, errors
from pipeline.errors import PipelineError
from pipeline.slack import message
from pipeline.slack import users as slack_users
from pipeline.slack.config import slack_settings
from pipeline.store import get_db
from pipeline.store import slack_outbox as outbox
from pipeline.views import WaitResult
from pipeline.web import api as web_api
from pipeline.web.body import _raw as raw_body
from pipeline.web.errors import ApiError

log = logging.getLogger("ravel.slack")

blueprint = Blueprint("ravel_slack", __name__)

#: Slack's interaction payloads are a few KB; anything far larger is not one.
MAX_BODY_BYTES = 64 * 1024
#: Decisions that close the question for everyone: the message loses its buttons.
_CLOSED = (
    errors.WaitAlreadyDecided,
    errors.WaitExpired,
    errors.WaitNotFound,
    errors.NotWaiting,
    errors.RunNotFound,
)


def _signing_secret() -> str:
    secret = current_app.config.get("RAVEL_SLACK_SIGNING_SECRET") or slack_settings().signing_secret
    if not secret:
        raise ApiError(
            503,
            "configuration_error",
            "SLACK_SIGNING_SECRET is not set on this "
            "server, so Slack's requests cannot be verified; set it to the app's "
            "Signing Secret (Basic Information in the Slack app settings)",
        )
    return str(secret)


def _unsigned(why: str) -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        f"{why}; this endpoint only accepts requests signed by Slack. Nothing was changed",
    )


def verified_body() -> bytes:
    """The raw body, if Slack signed it within the last 5 minutes; 401 otherwise."""
    secret = _signing_secret()
    raw = raw_body(MAX_BODY_BYTES)
    timestamp = request.headers.get("X-Slack-Request-Timestamp")
    signature = request.headers.get("X-Slack-Signature")
    if not timestamp or not signature:
        raise _unsigned(
            "the request lacks the X-Slack-Request-Timestamp or X-Slack-Signature header"
        )
    try:
        valid = SignatureVerifier(secret).is_valid(raw, timestamp, signature)
    except (ValueError, OverflowError):  # the verifier calls int() on the timestamp
        valid = False
    if not valid:
        raise _unsigned(
            "the request's signature is not valid (another signing secret, a body "
            "altered after signing, or a timestamp more than 5 minutes off)"
        )
    return raw


def _payload(raw: bytes) -> dict[str, Any]:
    try:
        form = parse_qs(raw.decode("utf-8"), max_num_fields=20)
        values = form.get("payload", [])
        payload = json.loads(values[0]) if len(values) == 1 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise ApiError(
            400,
            "invalid_body",
            "the body must be a form with one field `payload` holding Slack's interaction JSON",
        )
    return payload


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _click(payload: dict[str, Any]) -> tuple[str, str] | None:
    """(action id, wait id) of the first Approve or Reject button in ``payload``."""
    for action in payload.get("actions") or []:
        if isinstance(action, dict) and action.get("action_id") in (
            message.APPROVE,
            message.REJECT,
        ):
            try:
                wait_id = str(uuid.UUID(str(action.get("value"))))
            except ValueError:
                raise ApiError(
                    400, "invalid_field", "the button's value is not a wait id"
                ) from None
            return str(action["action_id"]), wait_id
    return None


def users_path() -> Path:
    """The Slack users file: the app's ``RAVEL_SLACK_USERS_FILE``, else the environment's."""
    configured = current_app.config.get("RAVEL_SLACK_USERS_FILE")
    return Path(configured) if configured else slack_settings().users_file


def _respond(url: str | None, outcome: str, original: Any, *, replace: bool) -> None:
    """Update the message (``replace``) or tell only the clicking user, in the background:
    Slack needs its answer within 3 seconds, and this call need not delay it."""
    if url is None:
        return
    text, blocks = message.outcome_message(original if replace else None, outcome)
    timeout = max(1, round(slack_settings().timeout))

    def send() -> None:
        try:
            answer = WebhookClient(url, timeout=timeout).send(
                text=text,
                blocks=blocks,
                replace_original=replace,
                response_type=None if replace else "ephemeral",
            )
            if answer.status_code != 200:
                log.warning(
                    "Slack's response_url answered %s: %s", answer.status_code, answer.body[:200]
                )
        except Exception as exc:
            log.warning("updating the Slack message failed: %s", str(exc)[:300])

    threading.Thread(target=send, name="ravel-slack-response", daemon=True).start()


def _decided(result: WaitResult) -> str:
    verb = "Approved" if result.decision == "approved" else "Rejected"
    under = (
        f" (as {result.principal})"
        if result.principal and result.principal != (result.actor)
        else ""
    )
    at = f" at {result.at:%Y-%m-%d %H:%M:%S} UTC" if result.at else ""
    return f"{verb} by {result.actor}{under}{at}."


def _decide(action: str, wait_id: str, person: slack_users.SlackUser) -> WaitResult:
    run_id = outbox.run_of_wait(get_db(), wait_id)
    if run_id is None:
        raise errors.WaitNotFound("this approval no longer exists")
    if action == message.APPROVE:
        return api.approve(run_id, person.principal, None, wait_id=wait_id, groups=person.groups)
    return api.reject(run_id, person.principal, None, wait_id=wait_id, groups=person.groups)


@blueprint.post("/slack/actions")
def slack_actions() -> Response:
    """A click on an approval message's button: verified, decided, answered with 200."""
    payload = _payload(verified_body())
    click = _click(payload) if payload.get("type") == "block_actions" else None
    if click is None:
        return Response(status=200)  # another interaction: nothing of Ravel's
    action, wait_id = click
    user, team = _object(payload.get("user")), _object(payload.get("team"))
    user_id, team_id = _text(user.get("id")), _text(team.get("id") or user.get("team_id"))
    url = _text(payload.get("response_url"))
    original = _object(payload.get("message")).get("blocks")
    person = slack_users.load(users_path()).find(team_id, user_id)
    if person is None:
        log.warning(
            "Slack user %s of team %s clicked on approval %s but is not in the Slack users file",
            str(user_id)[:40],
            str(team_id)[:40],
            wait_id,
        )
        _respond(
            url,
            f"Your Slack account ({user_id}) is not mapped to a Ravel principal, so "
            "it cannot decide approvals; an operator adds it to the Slack users file "
            "(RAVEL_SLACK_USERS_FILE).",
            None,
            replace=False,
        )
        return Response(status=200)
    try:
        result = _decide(action, wait_id, person)
    except errors.NotAuthorized as exc:
        _respond(url, f"You may not decide this approval: {exc}", None, replace=False)
    except _CLOSED as exc:
        _respond(url, f"This approval is closed: {exc}", original, replace=True)
    else:
        _respond(url, _decided(result), original, replace=True)
    return Response(status=200)


blueprint.register_error_handler(HTTPException, web_api.http_error)
blueprint.register_error_handler(ApiError, web_api._api_error)
blueprint.register_error_handler(PipelineError, web_api._pipeline_error)
blueprint.register_error_handler(Exception, web_api._unexpected)

__all__ = ["MAX_BODY_BYTES", "blueprint", "users_path", "verified_body"]
