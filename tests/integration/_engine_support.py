"""Helpers shared by the engine integration tests (in-process, no Celery)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from pipeline import RunStatus, get_run, run_history
from pipeline.reaper import ReapReport, reap


def unique(prefix: str) -> str:
    """A workflow name no other test uses (``Workflow()`` registers globally)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def kinds(run_id: str) -> list[str]:
    """The kinds of a run's audit events, oldest first."""
    return [e.kind for e in run_history(run_id)]


def status(run_id: str) -> RunStatus:
    return get_run(run_id).status


def reap_until(
    done: Callable[[], bool], *, timeout: float = 5.0, pause: float = 0.01
) -> list[ReapReport]:
    """Run reaper passes until ``done()`` holds; fail the test if it never does."""
    reports = []
    deadline = time.monotonic() + timeout
    while True:
        reports.append(reap())
        if done():
            return reports
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached after {timeout}s of reaper passes")
        time.sleep(pause)
