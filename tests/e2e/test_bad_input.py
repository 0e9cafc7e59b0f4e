"""Bad input at a real worker's doors (PostgreSQL + Redis): messages pushed into the step queue
with kombu (pickle, garbage, wrong content type, missing or mistyped arguments, wake-ups for an
unknown run, a stale step, another workflow, a 10 MB run id), a 50 MB LLM reply, a workflow
module that raises on import. Each is refused in the log, changes nothing in the database, and
the worker goes on serving: a run started or woken right after succeeds.

One worker (one pool process) serves every case of the module.
"""

from __future__ import annotations

import json
import os
import pickle
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from pipeline import dispatch, get_run, start_run, store
from pipeline.agent.replycap import MAX_REPLY_BYTES
from pipeline.engine import execute_step
from pipeline.migrate import upgrade
from pipeline.settings import reload_settings
from pipeline.store.decisions import Wakeup
from pipeline.testing import ScriptedLLMServer
from tests.e2e.bad_input_flows import SCRIPT
from tests.e2e.conftest import REDIS_DB, start_cluster
from tests.support.agents import ledger, messages
from tests.support.db_state import run_rows
from tests.support.services import (
    REDIS_HOST,
    REDIS_PORT,
    create_database,
    drop_database,
    pg_available,
    redis_available,
)
from tests.support.workers import Cluster, Proc, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]

WORKFLOWS = "tests.e2e.flows,tests.e2e.bad_input_flows"


@dataclass
class Served:
    """The module's worker, its cluster and scripted LLM server, and a folder for files."""

    cluster: Cluster
    worker: Proc
    llm: ScriptedLLMServer
    folder: Path
    broker_url: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not (pg_available() and redis_available()):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL and Redis are required in CI")
        pytest.skip("PostgreSQL or Redis is not reachable")
    folder = tmp_path_factory.mktemp("bad_input")
    name = f"ravel_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    upgrade(url)
    env = pytest.MonkeyPatch()
    llm = ScriptedLLMServer(SCRIPT).start()
    broker_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    cluster = start_cluster(folder, env, url, broker_url)
    store.reset_db()
    cluster.env.update(
        RAVEL_WORKFLOWS=WORKFLOWS, OPENAI_BASE_URL=llm.base_url, OPENAI_API_KEY="test"
    )
    try:
        worker = cluster.worker(concurrency=1)
        yield Served(cluster, worker, llm, folder, broker_url)
    finally:
        cluster.stop_all()
        llm.stop()
        env.undo()
        reload_settings()
        store.reset_db()
        dispatch.set_dispatcher(None)
        drop_database(name)


# -- helpers -------------------------------------------------------------------------------


class Unpickled:
    """Unpickling this creates a file: the proof that a worker loaded a pickle."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def push(
    served: Served,
    task: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    encoding: str = "utf-8",
    headers: dict[str, Any] | None = None,
) -> str:
    """Put a raw message for ``task`` in its step queue, as a script with broker access would.

    Returns the message's task id.
    """
    task_id = str(uuid.uuid4())
    if headers is None:
        headers = {
            "lang": "py",
            "task": task,
            "id": task_id,
            "root_id": task_id,
            "parent_id": None,
            "group": None,
            "retries": 0,
            "eta": None,
            "expires": None,
            "timelimit": [None, None],
            "argsrepr": "()",
            "kwargsrepr": "{...}",
            "origin": "bad-input-test",
            "ignore_result": True,
        }
    workflow, step = task.split(".", 1) if "." in task else (task, task)
    queue = dispatch.queue_for(workflow, step, 1)
    with Connection(served.broker_url) as conn:
        conn.Producer().publish(
            body,
            exchange="",
            routing_key=queue,
            content_type=content_type,
            content_encoding=encoding,
            headers=headers,
            delivery_mode=2,
        )
    return task_id


def task_body(**kwargs: Any) -> bytes:
    """A Celery (protocol 2) message body calling a task with ``kwargs``."""
    return json.dumps(
        [[], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    ).encode()


def log_after(worker: Proc, offset: int) -> str:
    return worker.log()[offset:]


def wait_logged(served: Served, offset: int, *texts: str) -> str:
    """Wait until the worker logged each of ``texts`` after ``offset``; return that part."""
    wait_for(
        lambda: all(t in log_after(served.worker, offset) for t in texts),
        30,
        f"the worker to log {texts}",
    )
    return log_after(served.worker, offset)


@contextmanager
def wakeups_held() -> Iterator[None]:
    """Wake-ups published inside are dropped: their runs stay pending for a test to poke."""
    sent = dispatch._load()
    dispatch.set_dispatcher(lambda wakeup, queue: None)
    try:
        yield
    finally:
        dispatch.set_dispatcher(sent)


def held_runs(*starts: tuple[str, dict[str, Any]]) -> list[str]:
    """Start runs without publishing their wake-ups."""
    with wakeups_held():
        return [start_run(workflow, data) for workflow, data in starts]


def wake(run_id: str) -> None:
    """Publish the run's current wake-up, as the reaper would."""
    run = get_run(run_id)
    assert run.status == "pending", run
    assert dispatch.publish(Wakeup(run_id, run.workflow, run.step, run.seq, 1))


def wait_status(served: Served, run_id: str, status: str, timeout: float = 30) -> None:
    try:
        wait_for(lambda: get_run(run_id).status == status, timeout, f"run {status}")
    except AssertionError:
        raise AssertionError(
            f"{str(get_run(run_id))[:2000]}\n{served.cluster.logs_tail()}"
        ) from None


def still_serving(served: Served) -> str:
    """A normal run right now succeeds on the worker; returns its id."""
    ledger_file = served.folder / f"ledger-{uuid.uuid4().hex[:6]}"
    run_id = start_run("e2e_charge", {"ledger": str(ledger_file)})
    wait_status(served, run_id, "succeeded")
    assert ledger_file.read_text().splitlines() == [f"{run_id}:charge"]
    assert served.worker.alive()
    return run_id


# -- messages pushed into the broker ------------------------------------------------------


def test_a_pickle_message_is_refused_unread(served: Served) -> None:
    marker = served.folder / "unpickled"
    ledger_file = served.folder / "pickle-ledger"
    [held] = held_runs(("e2e_charge", {"ledger": str(ledger_file)}))
    before = run_rows()
    offset = len(served.worker.log())

    body = pickle.dumps(
        ((), {"run_id": held, "seq": 0, "version": 1, "proof": Unpickled(marker)}, {})
    )
    push(
        served,
        "e2e_charge.pay",
        body,
        content_type="application/x-python-serialize",
        encoding="binary",
    )

    wait_logged(served, offset, "Refusing to deserialize untrusted content of type pickle")
    assert not marker.exists(), "the worker unpickled the message"
    assert run_rows() == before
    wake(held)
    wait_status(served, held, "succeeded")
    assert ledger_file.read_text().splitlines() == [f"{held}:charge"]
    still_serving(served)


def test_malformed_messages_are_dropped(served: Served) -> None:
    [held] = held_runs(("e2e_charge", {"ledger": str(served.folder / "malformed-ledger")}))
    before = run_rows()
    offset = len(served.worker.log())
    pay = "e2e_charge.pay"
    expected = [
        "Can't decode message body",
        "Refusing to deserialize untrusted content of type yaml",
        "Refusing to deserialize untrusted content of type text/plain",
        "Received and deleted unknown message",
        "Received unregistered task of type 'no_such.step'",
    ]

    push(served, pay, b"\x00\xff{not json")
    push(served, pay, b"run_id: x", content_type="application/x-yaml")
    push(served, pay, b"[[], {}, {}]", content_type="text/plain")
    push(served, pay, task_body(run_id=held), headers={})  # no task name at all
    push(served, "no_such.step", task_body(run_id=held, seq=0))
    # Bodies that are JSON but not [args, kwargs, options]: Celery's own consumer would stop
    # the worker on these (and give the message back, for the next worker to die on).
    for body in ({"not": "a task body"}, "just text", None, [[], {"run_id": held}]):
        task_id = push(served, pay, json.dumps(body).encode())
        expected.append(
            f"dropped a message that is not a task call (task '{pay}', id '{task_id}', "
        )
    # Arguments the step task refuses before anything reaches the database.
    for kwargs, why in [
        ({}, "run_id is missing; seq is missing"),
        (
            {"run_id": held, "seq": "zero", "version": 1},
            "seq is a 4-character string 'zero', not a whole number >= 0",
        ),
        (
            {"run_id": held, "seq": 0.0, "version": "1"},
            "seq is float 0.0, not a whole number "
            ">= 0; version is a 1-character string '1', not a whole number >= 1",
        ),
        ({"run_id": [held], "seq": 0, "version": 1}, "run_id is list ["),
    ]:
        task_id = push(served, pay, task_body(**kwargs))
        expected.append(f"refused a malformed message for {pay} (id {task_id}): {why}")

    log = wait_logged(served, offset, *expected)
    assert "Unrecoverable error" not in log
    assert served.worker.alive()
    assert run_rows() == before
    wake(held)
    wait_status(served, held, "succeeded")
    still_serving(served)


def test_wakeups_that_match_no_claimable_run_change_nothing(served: Served) -> None:
    chain_ledger = served.folder / "chain-ledger"
    chain, twin = held_runs(
        ("e2e_chain", {"ledger": str(chain_ledger), "n": 2}), ("bad_twin_a", {})
    )
    # Take the chain one step on in this process (its next wake-up held back): it is pending
    # at seq 1, so a wake-up for seq 0 is stale.
    with wakeups_held():
        assert execute_step(chain, 0, "tick", worker="test").committed
    assert (get_run(chain).status, get_run(chain).seq) == ("pending", 1)
    before = run_rows()
    offset = len(served.worker.log())

    nobody = str(uuid.uuid4())
    push(served, "e2e_charge.pay", task_body(run_id=nobody, seq=0, version=1))
    push(served, "e2e_chain.tick", task_body(run_id=chain, seq=0, version=1))
    # The claim matches (workflow, version) pairs: bad_twin_b's "go" cannot take a bad_twin_a
    # run, although the step's name and seq match.
    push(served, "bad_twin_b.go", task_body(run_id=twin, seq=0, version=1))
    huge = push(
        served,
        "e2e_charge.pay",
        task_body(run_id=str(uuid.uuid4()) + "0" * 10_000_000, seq=0, version=1),
    )

    log = wait_logged(
        served,
        offset,
        f"run {nobody}: nothing to claim for e2e_charge.pay at seq 0",
        f"run {chain}: nothing to claim for e2e_chain.tick at seq 0",
        f"run {twin}: nothing to claim for bad_twin_b.go at seq 0",
        f"refused a malformed message for e2e_charge.pay (id {huge}): run_id is a "
        "10000036-character string",
    )
    assert "0" * 1000 not in log, "the 10 MB run id was written to the log"
    assert run_rows() == before
    wake(chain)
    wake(twin)
    wait_status(served, chain, "succeeded")
    wait_status(served, twin, "succeeded")
    assert get_run(chain).result == {"ticks": 2}
    assert chain_ledger.read_text().splitlines() == [f"{chain}:0", f"{chain}:1"]
    assert get_run(twin).result == {"by": "bad_twin_a"}
    still_serving(served)


# -- an LLM reply of 50 MB -------------------------------------------------------------------


def _peak_rss_kb(worker: Proc) -> int:
    """The peak resident memory of the worker's pool process (there is one)."""
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    assert len(children) == 1, children
    status = Path(f"/proc/{children[0]}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM:")).split()[1])


def test_a_50mb_llm_reply_fails_the_attempt_with_bounded_memory(served: Served) -> None:
    normal = start_run("bad_talker", {"message": "say something"})
    wait_status(served, normal, "succeeded")
    peak_before = _peak_rss_kb(served.worker)

    rid = start_run("bad_talker", {"message": "say something huge"})
    wait_status(served, rid, "failed")

    run = get_run(rid)
    assert f"over the {MAX_REPLY_BYTES}-byte limit on LLM replies: it was not read" in run.error
    assert "LLMError: the LLM reply is 500" in run.error  # 50,000,xxx bytes
    assert served.llm.stats(rid)["calls"] == 1  # permanent: not asked again
    [call] = ledger(rid)
    assert call.status == "started" and call.result is None
    assert messages(rid) == []  # the first step's conversation was never committed
    grown_mb = (_peak_rss_kb(served.worker) - peak_before) / 1024
    assert grown_mb < 40, f"the pool process grew by {grown_mb:.0f} MB reading the reply"
    again = start_run("bad_talker", {"message": "say something"})
    wait_status(served, again, "succeeded")
    assert get_run(again).result["answer"] == "a short answer"


# -- a workflow module that raises on import -------------------------------------------------


def test_a_workflow_module_that_raises_on_import_stops_worker_and_beat(served: Served) -> None:
    folder = served.folder / "app"
    folder.mkdir()
    (folder / "boom_flows.py").write_text(
        "import os\n\nVENDOR = os.environ['VENDOR_TOKEN']  # not set\n"
    )
    env = {"RAVEL_WORKFLOWS": "tests.e2e.flows,boom_flows"}
    procs = [
        served.cluster.celery(f"boom-{what}", [what, "--loglevel", "INFO"], env, cwd=folder)
        for what in ("worker", "beat")
    ]
    expected = (
        "ravel cannot start: RAVEL_WORKFLOWS names 'boom_flows', which raised KeyError "
        f"on import: 'VENDOR_TOKEN' ({folder / 'boom_flows.py'}, line 3)"
    )
    for proc in procs:
        wait_for(lambda: not proc.alive(), 60, f"{proc.name} to exit")  # noqa: B023
        assert proc.popen.returncode == 1, proc.log()
        assert proc.log().strip().splitlines() == [expected], proc.log()
    still_serving(served)
