"""Cursor pagination of runs and of the approvals a caller may decide.

A cursor is opaque to clients: URL-safe base64 of the (created_at, id) of the last run a
page covered, so a page never repeats or skips a run when new runs start meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.api import _view
from pipeline.principals import authorize
from pipeline.status import RunStatus
from pipeline.store import get_db, runs
from pipeline.store.db_errors import actionable
from pipeline.views import RunView
from pipeline.web.errors import ApiError
from pipeline.web.keys import Caller

#: runs read per query while looking for approvals the caller may decide
_SCAN_BATCH = 200
#: at most this many waiting runs are looked at per request; the cursor goes on from there
_SCAN_LIMIT = 5000

Position = tuple[datetime, str]


def encode_cursor(run: RunView) -> str:
    """The cursor that continues after ``run``."""
    raw = json.dumps([run.created_at.astimezone(UTC).isoformat(), run.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor stands for; 400 for one this API did not return."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, run_id = json.loads(raw)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, str(uuid.UUID(run_id))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ApiError(
            400,
            "invalid_cursor",
            "the cursor is not one this API returned; use "
            "the next_cursor of the previous page, or start again without "
            "cursor",
        ) from None


def parse_status(text: str | None) -> str | None:
    """A status filter; 400 naming the statuses otherwise."""
    if text is None:
        return None
    try:
        return RunStatus(text).value
    except ValueError:
        choices = ", ".join(s.value for s in RunStatus)
        raise ApiError(
            400, "invalid_query", f"unknown status {text[:50]!r}; use one of: {choices}"
        ) from None


def parse_limit(text: str | None, default: int, maximum: int) -> int:
    """A page size from 1 to ``maximum``; 400 otherwise."""
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:
        raise ApiError(
            400, "invalid_query", f"limit must be an integer from 1 to {maximum}, not {text[:20]!r}"
        )
    return int(text)


@actionable
def runs_page(
    status: str | None, workflow: str | None, limit: int, before: Position | None
) -> tuple[list[RunView], str | None]:
    """A page of runs, newest first, and the cursor of the next page (None: no more)."""
    found = runs.list_runs(get_db(), status, workflow, limit + 1, before=before)
    page = [_view(r, w) for r, w in found[:limit]]
    more = len(found) > limit
    return page, encode_cursor(page[-1]) if more and page else None


@dataclass(frozen=True)
class OpenApproval:
    """An open approval the caller may decide, and the principal they would decide as."""

    run: RunView
    principal: str

    def to_json(self) -> dict[str, Any]:
        """``{run_id, workflow, step, as, wait}``."""
        assert self.run.wait is not None
        return {
            "run_id": self.run.id,
            "workflow": self.run.workflow,
            "step": self.run.step,
            "as": self.principal,
            "wait": self.run.wait.to_json(),
        }


def approvals_page(
    caller: Caller, workflow: str | None, limit: int, before: Position | None
) -> tuple[list[OpenApproval], str | None]:
    """Open approvals ``caller`` may decide, newest run first, and the next page's cursor.

    Waiting runs are read in batches and matched with :func:`pipeline.principals.authorize`;
    after :data:`_SCAN_LIMIT` runs the page ends early (maybe empty) with a cursor to go on.
    """
    found: list[OpenApproval] = []
    scanned = 0
    while True:
        batch, more = runs_page(RunStatus.WAITING.value, workflow, _SCAN_BATCH, before)
        for run in batch:
            scanned += 1
            wait = run.wait
            principal = None
            if wait is not None and wait.kind == "approval":
                principal = authorize(wait.approvers, caller.principal, caller.groups)
            if principal is not None:
                found.append(OpenApproval(run, principal))
                if len(found) == limit:
                    return found, encode_cursor(run)
        if more is None or not batch:
            return found, None
        before = decode_cursor(more)
        if scanned >= _SCAN_LIMIT:
            return found, more


__all__ = [
    "OpenApproval",
    "approvals_page",
    "decode_cursor",
    "encode_cursor",
    "parse_limit",
    "parse_status",
    "runs_page",
]
