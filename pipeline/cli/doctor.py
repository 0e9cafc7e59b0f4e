"""``ravel doctor``: is this deployment able to run workflows? One line per check.

Checks the database (reachable, migrated), the broker (reachable), the workers (seen
recently, what they serve) and the reaper (its last pass, what it did, its last error).
Exit code 0 only when no check failed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import click

from pipeline.cli.common import json_option
from pipeline.cli.errors import describe, one_line
from pipeline.cli.output import echo_json, when
from pipeline.redact import mask_url
from pipeline.settings import Settings, get_settings
from pipeline.store import get_db, health

OK, WARN, FAIL = "ok", "warn", "fail"
#: How long the broker check may take.
BROKER_TIMEOUT = 5.0


@dataclass
class Check:
    """The result of one check.

    Attributes:
        check: what was checked (``database``, ``broker``, ``workers``, ``reaper``).
        status: ``ok``, ``warn`` or ``fail``.
        message: one line for a person.
        details: the same facts for machines (``--json``).
    """

    check: str
    status: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def check_database(settings: Settings) -> Check:
    """Reachable, and migrated to the revision this version of Ravel needs."""
    try:
        state = health.schema_state(settings.database_url)
    except Exception as exc:
        return Check("database", FAIL, describe(exc))
    details = {"url": state.url, "current": state.current, "head": state.head}
    if state.problem:
        return Check("database", FAIL, state.problem, details)
    if state.newer:
        return Check(
            "database",
            WARN,
            f"{state.url} is at revision {state.current}, which this "
            f"version of Ravel does not know (head {state.head}): it was migrated by a "
            "newer version; upgrade Ravel here",
            details,
        )
    return Check("database", OK, f"{state.url} at revision {state.current} (head)", details)


def check_broker(settings: Settings) -> Check:
    """The broker the workers use accepts a connection within :data:`BROKER_TIMEOUT`."""
    # CELERY_BROKER_URL wins over RAVEL_BROKER_URL inside Celery: check what workers use.
    url = os.environ.get("CELERY_BROKER_URL") or settings.broker_url
    if url.startswith("filesystem"):
        folder = settings.broker_folder
        if not folder.is_dir():
            return Check(
                "broker",
                WARN,
                f"filesystem broker folder {folder} does not exist yet "
                "(a worker creates it when it starts)",
                {"url": url},
            )
        return Check("broker", OK, f"filesystem broker at {folder}", {"url": url})
    from kombu.connection import Connection  # kombu only: pipeline never imports Celery

    conn = Connection(  # type: ignore[no-untyped-call]
        url,
        connect_timeout=BROKER_TIMEOUT,
        transport_options={
            "socket_connect_timeout": BROKER_TIMEOUT,
            "socket_timeout": BROKER_TIMEOUT,
        },
    )
    shown = mask_url(url)
    try:
        conn.ensure_connection(  # type: ignore[no-untyped-call]  # kombu is partly typed
            max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT
        )
    except Exception as exc:
        why = one_line(str(exc)).rstrip(".")
        return Check(
            "broker",
            FAIL,
            f"cannot reach the broker at {shown}: {why}; "
            "is it running, and is RAVEL_BROKER_URL right?",
            {"url": shown},
        )
    finally:
        conn.release()  # type: ignore[no-untyped-call]
    return Check("broker", OK, f"{shown} accepts connections", {"url": shown})


def check_workers() -> Check:
    """At least one worker sent a heartbeat recently; what each one serves."""
    found = health.workers(get_db())
    recent = [w for w in found if w.age <= health.WORKER_GONE_AFTER]
    details = {
        "workers": [
            {
                "name": w.name,
                "workflows": w.workflows,
                "started_at": w.started_at,
                "last_seen_at": w.last_seen_at,
                "age_seconds": round(w.age, 1),
                "recent": w.age <= health.WORKER_GONE_AFTER,
            }
            for w in found
        ]
    }
    if not recent:
        last = (
            f"; the last one, {found[0].name}, was seen {found[0].age:.0f} s ago" if found else ""
        )
        return Check(
            "workers",
            FAIL,
            f"no worker seen in the last "
            f"{health.WORKER_GONE_AFTER:.0f} s{last}; start `celery -A tasks worker`",
            details,
        )
    served = "; ".join(f"{w.name} ({_served(w.workflows)}, seen {w.age:.0f} s ago)" for w in recent)
    return Check(
        "workers",
        OK,
        f"{len(recent)} seen in the last {health.WORKER_GONE_AFTER:.0f} s: {served}",
        details,
    )


def _served(workflows: dict[str, list[int]]) -> str:
    if not workflows:
        return "no workflows: set RAVEL_WORKFLOWS"
    return ", ".join(
        f"{name} v{', v'.join(str(v) for v in versions)}"
        for name, versions in sorted(workflows.items())
    )


def check_reaper(settings: Settings) -> Check:
    """A reaper pass ran recently, and the last one did not fail."""
    found = health.reapers(get_db())
    limit = health.reaper_silence_limit(settings.reaper_interval)
    hint = (
        "retries, sleeps, approval expiries and lost wake-ups are not being handled; "
        "run `celery -A tasks beat` or a worker with -B"
    )
    if not found:
        return Check("reaper", FAIL, f"no reaper pass was ever recorded: {hint}")
    last = found[0]
    details = {
        "name": last.name,
        "last_pass_at": last.last_pass_at,
        "age_seconds": round(last.age, 1),
        "passes": last.passes,
        "last_report": last.last_report,
        "last_error": last.last_error,
        "last_error_at": last.last_error_at,
        "limit_seconds": limit,
    }
    if last.age > limit:
        return Check(
            "reaper",
            FAIL,
            f"no reaper pass for {last.age:.0f} s (last by {last.name}): {hint}",
            details,
        )
    did = ", ".join(f"{k} {v}" for k, v in last.last_report.items()) or "nothing"
    message = f"last pass {last.age:.1f} s ago by {last.name} ({last.passes} passes; last: {did})"
    if last.last_error and last.last_error_at and last.last_error_at >= last.last_pass_at:
        return Check("reaper", WARN, f"{message}; it failed: {one_line(last.last_error)}", details)
    if last.last_error:
        message += f"; last error at {when(last.last_error_at)}: {one_line(last.last_error)[:200]}"
    return Check("reaper", OK, message, details)


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in order; those that need the database are skipped without it."""
    checks = [check_database(settings), check_broker(settings)]
    if checks[0].status == FAIL:
        skipped = "not checked: the database is not usable"
        return [*checks, Check("workers", WARN, skipped), Check("reaper", WARN, skipped)]
    for fn in (check_workers, lambda: check_reaper(settings)):
        try:
            checks.append(fn())
        except Exception as exc:  # one broken check must not hide the others
            name = "workers" if fn is check_workers else "reaper"
            checks.append(Check(name, FAIL, describe(exc)))
    return checks


@click.command()
@json_option
def doctor(as_json: bool) -> None:
    """Check the database, the broker, the workers and the reaper; exit 1 if any fails."""
    checks = run_checks(get_settings())
    ok = all(c.status != FAIL for c in checks)
    if as_json:
        echo_json({"ok": ok, "checks": checks})
    else:
        for c in checks:
            click.echo(f"{c.status.upper():<4}  {c.check:<8}  {c.message}")
    if not ok:
        raise click.exceptions.Exit(1)
