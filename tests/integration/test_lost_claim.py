"""A claim lost in a PostgreSQL crash fences out its claimant, though the run's next claim
gets the same fencing token.

Claims commit without waiting for the WAL flush (``Database.relaxed``). The private server
here keeps such commits in its WAL buffers for 10 s (``wal_writer_delay``), so a SIGKILL
right after a claim loses it for certain, as a crash of a busy server can.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import select

from models import Effect, Run, table_of
from pipeline import Done, StepContext, Workflow, get_run, start_run
from pipeline.engine import StepOutcome, execute_step
from pipeline.migrate import upgrade
from pipeline.store import get_db
from pipeline.testing._postgres import bindir
from pipeline.testing.servers import PostgresServer
from tests.conftest import _use
from tests.integration._engine_support import unique
from tests.support.services import require_programs

runs_t = table_of(Run)
effects_t = table_of(Effect)


@pytest.fixture
def crashable_pg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresServer]:
    """A private PostgreSQL, migrated and used by this test, that writes asynchronous
    commits to its WAL only every 10 s."""
    require_programs(bindir)
    server = PostgresServer(tmp_path / "pg", settings={"wal_writer_delay": "10s"})
    try:
        _use(monkeypatch, tmp_path, server.url)
        upgrade(server.url)
        yield server
    finally:
        from pipeline import store

        store.reset_db()
        server.close()


def _fencing(run_id: str) -> tuple[str, int]:
    with get_db().engine.connect() as conn:
        row = conn.execute(
            select(runs_t.c.status, runs_t.c.fencing).where(runs_t.c.id == run_id)
        ).one()
    return row.status, row.fencing


def test_a_claim_lost_in_a_database_crash_fences_out_its_claimant(
    crashable_pg: PostgresServer, inline: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import lease

    # Two attempts of one process share its lease keeper; neither needs renewing here.
    monkeypatch.setattr(lease.LeaseKeeper, "hold", lambda self, run_id, fencing, owner: None)
    calls: list[int] = []
    attempts = count()
    first_claimed, first_go = threading.Event(), threading.Event()
    second_paid, second_go = threading.Event(), threading.Event()
    flow = Workflow(unique("lost_claim"))

    def pay(who: int) -> dict[str, int]:
        calls.append(who)
        return {"paid_by": who}

    @flow.step(start=True)
    def work(ctx: StepContext) -> Done:
        me = next(attempts)
        if me == 0:  # the attempt whose claim the crash loses: it goes on afterwards
            first_claimed.set()
            assert first_go.wait(30)
        ctx.effect("pay", pay, me)
        if me == 1:  # the attempt that claimed after the crash holds the run meanwhile
            second_paid.set()
            assert second_go.wait(30)
        return Done({"by": me})

    run_id = start_run(flow.name, {})
    wake = inline.queue.popleft()  # type: ignore[attr-defined]
    _, fencing_before = _fencing(run_id)
    outcomes: dict[str, StepOutcome] = {}

    def attempt(label: str) -> None:
        # The same worker name for both: the owner recorded by each claim differs anyway.
        outcomes[label] = execute_step(
            run_id, wake.seq, wake.step, worker="host/1", workflow=flow.name, version=1
        )

    first = threading.Thread(target=attempt, args=("first",))
    first.start()
    assert first_claimed.wait(20)
    crashable_pg.kill()
    crashable_pg.start()  # crash recovery: the claim was never written to the WAL
    assert _fencing(run_id) == ("pending", fencing_before)

    second = threading.Thread(target=attempt, args=("second",))
    second.start()
    assert second_paid.wait(20)
    # The second claim reached the token the lost one had: only the owner tells them apart.
    assert _fencing(run_id) == ("running", fencing_before + 1)

    first_go.set()  # the first claimant resumes, its claim gone
    first.join(30)
    assert calls == [1], "the claimant whose claim was lost called the effect again"
    assert not outcomes["first"].committed

    second_go.set()
    second.join(30)
    assert outcomes["second"].committed
    run = get_run(run_id)
    assert run.status == "succeeded" and run.result == {"by": 1}
    with get_db().engine.connect() as conn:
        assert conn.execute(
            select(effects_t.c.calls).where(effects_t.c.run_id == run_id)
        ).all() == [(1,)]
