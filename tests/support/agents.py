"""Helpers for agent tests: the scripted LLM server wired in, runs driven to rest in-process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select, update

from models import Run, Wait
from pipeline import RunView, get_run
from pipeline.reaper import reap
from pipeline.settings import get_settings, reload_settings
from pipeline.store import get_db, journal
from pipeline.testing import ScriptedLLMServer
from tests.support.inline import InlineDispatcher

runs_t = Run.__table__
waits_t = Wait.__table__
MODEL = "gpt-4o-mini"  # priced in the built-in table: $0.15 / $0.60 per 1M tokens


@contextmanager
def scripted_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    """A scripted server reached through ``OPENAI_BASE_URL``; set its script per test."""
    server = ScriptedLLMServer({"turns": [{"content": "unscripted"}]}).start()
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("RAVEL_MODEL", MODEL)
    reload_settings()
    try:
        yield server
    finally:
        server.stop()
        # Read the environment afresh once monkeypatch has restored it.
        get_settings.cache_clear()


def unique(prefix: str) -> str:
    """An agent name no other test uses (workflows register globally)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def force_wake(run_id: str) -> None:
    """Make a sleeping run's ``wake_at`` due now, as if its backoff had passed."""
    with get_db().begin() as conn:
        conn.execute(
            update(runs_t)
            .where(runs_t.c.id == run_id, runs_t.c.wake_at.is_not(None))
            .values(wake_at=runs_t.c.created_at)
        )


def force_expiry(run_id: str) -> None:
    """Make a run's open wait expire now, as if its timeout had passed."""
    with get_db().begin() as conn:
        conn.execute(
            update(waits_t)
            .where(waits_t.c.run_id == run_id, waits_t.c.decided_at.is_(None))
            .values(expires_at=waits_t.c.created_at)
        )


def wake_at(run_id: str) -> Any:
    """The run's ``wake_at`` column, as stored."""
    with get_db().engine.connect() as conn:
        return conn.execute(select(runs_t.c.wake_at).where(runs_t.c.id == run_id)).scalar_one()


def settle(
    inline: InlineDispatcher, run_id: str, *, wake: bool = True, rounds: int = 50
) -> RunView:
    """Run queued steps; wake sleeping runs (if ``wake``) until the run parks or finishes."""
    for _ in range(rounds):
        inline.drain()
        run = get_run(run_id)
        if run.status == "sleeping" and wake:
            force_wake(run_id)
            reap()
            continue
        return run
    raise AssertionError(f"run {run_id} did not settle in {rounds} rounds")


def ledger(run_id: str) -> list[Any]:
    """Every journal row of the run (name, kind, status, calls, key, tokens, cost, result)."""
    return journal.usage_by_call(get_db(), run_id)


def messages(run_id: str) -> list[dict[str, Any]]:
    """The run's stored conversation."""
    return journal.load_messages(get_db(), run_id)


def tool_messages(run_id: str) -> list[str]:
    """The contents of the run's tool messages, in order."""
    return [m["content"] for m in messages(run_id) if m["role"] == "tool"]


def arm_faults(monkeypatch: pytest.MonkeyPatch, once_dir: Any, spec: str) -> None:
    """Arm fault points in this process, each firing once (``pipeline.faults``).

    The ``arm`` fixture (tests/integration/conftest.py) clears them at teardown.
    """
    from pipeline import faults

    monkeypatch.setenv("RAVEL_FAULTS", spec)
    monkeypatch.setenv("RAVEL_FAULTS_ONCE_DIR", str(once_dir))
    faults._armed.cache_clear()
