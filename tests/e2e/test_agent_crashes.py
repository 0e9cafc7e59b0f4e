"""Token accounting under SIGKILL on real workers: journaled LLM calls are never re-billed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import get_run, run_steps, start_run
from pipeline.store import get_db, journal
from pipeline.testing import ScriptedLLMServer
from tests.e2e.agents import SCRIPT
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(SCRIPT) as server:
        yield server


def _env(llm: ScriptedLLMServer, ledger: Path, faults: str = "") -> dict[str, str]:
    env = {
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "test",
        "RAVEL_WORKFLOWS": "tests.e2e.agents",
        "E2E_LEDGER": str(ledger),
    }
    if faults:
        env["RAVEL_FAULTS"] = faults
    return env


def _run(cluster: Cluster, llm: ScriptedLLMServer, tmp_path: Path, faults: str) -> str:
    """One run on a fresh worker armed with ``faults``; the worker is stopped afterwards."""
    ledger = tmp_path / f"ledger-{'killed' if faults else 'reference'}"
    worker = cluster.worker(_env(llm, ledger, faults))
    run_id = start_run("e2e_shopper", {"message": "buy A-1"})
    try:
        wait_for(lambda: get_run(run_id).status == "succeeded", 60, "the run to succeed")
    except AssertionError:
        raise AssertionError(f"{get_run(run_id)}\n{cluster.logs_tail()}") from None
    finally:
        worker.kill()
    # The tool may run again after a crash inside it, but only ever with the same key: a
    # remote system that honours the key applies the charge once.
    keys = ledger.read_text().splitlines()
    assert len(set(keys)) == 1, f"the charge was made under different keys: {keys}"
    assert len(keys) == (2 if faults.startswith("inside_charge") else 1), keys
    return run_id


@pytest.mark.parametrize(
    ("faults", "broker"),
    [
        ("after_commit_before_publish@act=kill", "redis"),  # between steps
        ("inside_charge=kill", "redis"),  # inside a tool call, after the remote effect
        # tool result journaled, step not committed
        ("after_effect_call_before_commit@act=kill", "redis"),
        # response journaled, not committed
        ("after_llm_response_before_persist@reason=kill", "redis"),
        # in flight: paid, never recorded; on RabbitMQ too (the killed child's wake-up is
        # requeued at once, no visibility timeout)
        ("after_effect_call_before_record@reason=kill", "redis"),
        ("after_effect_call_before_record@reason=kill", "amqp"),
    ],
)
def test_killed_run_bills_like_an_uninterrupted_one(
    request: pytest.FixtureRequest,
    llm: ScriptedLLMServer,
    tmp_path: Path,
    faults: str,
    broker: str,
) -> None:
    fixture = {"redis": "pg_cluster", "amqp": "amqp_cluster"}[broker]
    pg_cluster: Cluster = request.getfixturevalue(fixture)
    pg_cluster.beat(_env(llm, tmp_path / "beat-ledger"))
    reference = _run(pg_cluster, llm, tmp_path, "")
    billed_reference = llm.stats(reference)["total_tokens"]
    calls_reference = llm.stats(reference)["calls"]
    assert calls_reference == 3

    killed = _run(pg_cluster, llm, tmp_path, faults)
    assert (tmp_path / "faults").exists() and any((tmp_path / "faults").iterdir()), (
        "the fault never fired"
    )
    lost = [s for s in run_steps(killed) if s.status == "lost"]
    # Killed after its commit, the step is not lost: the reaper re-publishes the next one.
    assert len(lost) == (0 if faults.startswith("after_commit") else 1), lost
    stats = llm.stats(killed)
    if faults.startswith("after_effect_call_before_record"):
        # The first call's response was paid, then lost with the worker: exactly that one
        # call is billed again, nothing else.
        first_call = next(
            e.tokens for e in journal.usage_by_call(get_db(), reference) if e.name == "llm:0"
        )
        assert stats["calls"] == calls_reference + 1
        assert stats["total_tokens"] == billed_reference + first_call
        assert get_run(killed).tokens == billed_reference
    else:
        assert stats["calls"] == calls_reference
        assert stats["total_tokens"] == billed_reference
        assert get_run(killed).tokens == billed_reference
