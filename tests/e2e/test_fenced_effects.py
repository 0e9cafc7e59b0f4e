"""Fenced journal intents on real workers: once a run is cancelled, or its lease taken over, the
attempt that lost it starts no further effect, even a step that is mid-way between two."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from pipeline import cancel_run, get_run, run_steps, start_run
from pipeline.store import get_db, journal
from tests.support.workers import Cluster, Proc, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]
FLOWS = {"RAVEL_WORKFLOWS": "tests.e2e.fence_flows"}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _files(tmp_path: Path, name: str) -> dict[str, Any]:
    """The run's input: its ledger, remote system, marker and release files."""
    return {
        key: str(tmp_path / f"{name}.{key}") for key in ("ledger", "remote", "marker", "release")
    }


def _journaled(run_id: str, name: str) -> bool:
    entry = journal.load(get_db(), run_id, 0).get(name)
    return entry is not None and entry.done


def _succeeds(run_id: str, cluster: Cluster, timeout: float = 40) -> None:
    try:
        wait_for(lambda: get_run(run_id).status == "succeeded", timeout, "the run to succeed")
    except AssertionError:
        raise AssertionError(f"run is {get_run(run_id).status}\n{cluster.logs_tail()}") from None


def test_cancel_mid_step_starts_no_further_effect(pg_cluster: Cluster, tmp_path: Path) -> None:
    """A step is between effect a and effect b when its run is cancelled: b is never called,
    nothing is committed, and the worker goes on serving."""
    worker = pg_cluster.worker(FLOWS, concurrency=1)
    files = _files(tmp_path, "first")
    run_id = start_run("e2e_fence", files)
    wait_for(lambda: _journaled(run_id, "a"), 30, "effect a to be journaled")

    assert cancel_run(run_id, "test", "stop mid-step").status == "cancelled"
    Path(files["release"]).touch()  # the step goes on to effect b

    # One pool process: the next run starts only once the cancelled attempt has ended.
    again = _files(tmp_path, "second")
    Path(again["release"]).touch()
    second = start_run("e2e_fence", again)
    _succeeds(second, pg_cluster)
    assert _lines(Path(again["remote"])) == [f"{second}:b:attempt 1"]

    assert _lines(Path(files["remote"])) == [], "effect b was called after the cancel"
    assert _lines(Path(files["ledger"])) == [f"{run_id}:a"]
    assert get_run(run_id).status == "cancelled"
    assert sorted(journal.load(get_db(), run_id, 0)) == ["a"], "an intent for b was written"
    assert [s for s in run_steps(run_id) if s.status == "succeeded"] == []
    assert worker.alive()


def _attempt_ended(proc: Proc) -> bool:
    log = proc.log()
    return "commits nothing" in log or "lease lost" in log


def test_a_thawed_zombie_calls_no_effect_again(pg_cluster: Cluster, tmp_path: Path) -> None:
    """A worker frozen between effect a and effect b loses its run to another worker, which
    finishes it (a is not re-run, b runs once). Thawed, the zombie's stale journal does not
    lead it to call b again: its intent write fails the fence, and it commits nothing."""
    fast = {**FLOWS, "RAVEL_LEASE_SECONDS": "2"}
    zombie = pg_cluster.worker(fast, concurrency=1)
    pg_cluster.beat(fast)
    files = _files(tmp_path, "run")
    run_id = start_run("e2e_fence", files)
    wait_for(
        lambda: _lines(Path(files["marker"])) == ["attempt 1"],
        30,
        "the first attempt to pass effect a",
    )
    zombie.kill(signal.SIGSTOP)  # the whole process group, lease renewal thread included
    try:
        Path(files["release"]).touch()
        pg_cluster.worker(fast, concurrency=1)
        _succeeds(run_id, pg_cluster)
    finally:
        zombie.kill(signal.SIGCONT)
    wait_for(
        lambda: _attempt_ended(zombie),
        30,
        f"the thawed worker to end its attempt\n{zombie.log()[-3000:]}",
    )

    assert _lines(Path(files["remote"])) == [f"{run_id}:b:attempt 2"], "b ran more than once"
    assert _lines(Path(files["ledger"])) == [f"{run_id}:a"], "a ran again"
    assert _lines(Path(files["marker"])) == ["attempt 1", "attempt 2"]
    run = get_run(run_id)
    assert run.status == "succeeded" and run.result == {"attempt": 2}
    assert run.state["by_attempt"] == 2
    assert [(s.seq, s.attempt, s.status) for s in run_steps(run_id)] == [
        (0, 1, "lost"),
        (0, 2, "succeeded"),
    ]
    calls = {name: e.calls for name, e in journal.load(get_db(), run_id, 0).items()}
    assert calls == {"a": 1, "b": 1}
    assert "cancelled or taken over during step transfer" in zombie.log()
    assert zombie.alive()
