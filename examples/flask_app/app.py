"""The Flask shop: sign in, request a refund (a Ravel run), follow it, and decide it through
Ravel's blueprint, mounted at ``/api/ravel`` with the signed-in user as the caller.

    python -m waitress --listen 127.0.0.1:8000 examples.flask_app.app:app

The blueprint's routes act as the session's user and their groups (``RAVEL_API_IDENTITY``);
scripts without a session still use API keys. A POST with the session must carry the
page's CSRF token in ``X-CSRF-Token`` (a cross-site page can send neither that header nor a
JSON body without the browser asking this server first).
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Flask, Request, abort, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from pipeline import get_run, run_history, start_run
from pipeline.principals import authorize
from pipeline.web import Caller, Role, mount
from pipeline.web.errors import ApiError

from . import store
from .worker import send_confirmation

API = "/api/ravel"


@dataclass(frozen=True)
class User:
    """A person of the example (a real app asks its own user store)."""

    password: str
    role: Role
    groups: tuple[str, ...] = ()


#: Example people only: passwords in clear, never in production.
USERS = {
    "alice": User("alice", Role.APPROVER, ("finance",)),
    "bob": User("bob", Role.APPROVER),  # may try; the wait says who may decide
}


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def _check_csrf(sent: str | None) -> bool:
    return hmac.compare_digest(sent or "", session.get("csrf", "") or "\0")


def identity(req: Request) -> Caller | None:
    """The blueprint's caller: the session's user, or None (then API keys apply)."""
    name = session.get("user")
    if name not in USERS:
        return None
    if req.method not in ("GET", "HEAD") and not _check_csrf(req.headers.get("X-CSRF-Token")):
        raise ApiError(
            403,
            "csrf_failed",
            "send the page's CSRF token in the X-CSRF-Token header; nothing was changed",
        )
    user = USERS[name]
    return Caller(name, user.role, user.groups)


def _signed_in(view: Any) -> Any:
    @wraps(view)
    def check(*args: Any, **kwargs: Any) -> Any:
        if session.get("user") not in USERS:
            return redirect(url_for("login", next=request.path))
        if request.method == "POST" and not _check_csrf(request.form.get("csrf_token")):
            abort(403)
        return view(*args, **kwargs)

    return check


def create_app() -> Flask:
    """The shop, with Ravel's API mounted at ``/api/ravel``."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("FLASK_SECRET_KEY", "example-only-set-FLASK_SECRET_KEY"),
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        RAVEL_API_IDENTITY=identity,
    )
    mount(app, API)
    app.context_processor(lambda: {"csrf_token": _csrf_token(), "user": session.get("user")})

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "POST":
            name = request.form.get("username", "")
            user = USERS.get(name)
            if not _check_csrf(request.form.get("csrf_token")):
                abort(403)
            if user and hmac.compare_digest(user.password, request.form.get("password", "")):
                session.clear()
                session["user"] = name
                return redirect(request.args.get("next") or url_for("home"))
            return render_template("login.html", error="unknown user or wrong password"), 401
        return render_template("login.html")

    @app.get("/")
    @_signed_in
    def home() -> str:
        return render_template("home.html", refunds=store.refunds_of(session["user"]))

    @app.post("/refunds")
    @_signed_in
    def request_refund() -> Response:
        amount = request.form.get("amount", "")
        customer = session["user"]
        with store.transaction() as db:  # the request is committed before its run starts
            refund_id = db.execute(
                "INSERT INTO refunds (customer, amount) VALUES (?, ?)", (customer, amount)
            ).lastrowid
        assert refund_id is not None
        run_id = start_run(
            "flask_refund",
            {"customer": customer, "amount": amount},
            idempotency_key=f"flask-refund-{refund_id}",
            actor=customer,
        )
        with store.transaction() as db:
            db.execute("UPDATE refunds SET run_id = ? WHERE id = ?", (run_id, refund_id))
        send_confirmation.delay(refund_id)  # the shop's own task, on the same worker
        return redirect(url_for("refund_page", refund_id=refund_id))

    @app.get("/refunds/<int:refund_id>")
    @_signed_in
    def refund_page(refund_id: int) -> str:
        found = store.refund(refund_id)
        if found is None or (found["customer"] != session["user"] and not _approver()):
            abort(404)
        if not found["run_id"]:  # start_run failed after the commit: request it again
            abort(503)
        run = get_run(found["run_id"])
        user = USERS[session["user"]]
        decides_as = None
        if run.wait is not None and run.wait.kind == "approval" and user.role >= Role.APPROVER:
            decides_as = authorize(run.wait.approvers, session["user"], user.groups)
        return render_template(
            "refund.html",
            refund=found,
            run=run.to_json(),
            api=API,
            history=run_history(run.id),
            decides_as=decides_as,
        )

    return app


def _approver() -> bool:
    return USERS[session["user"]].role >= Role.APPROVER


app = create_app()
