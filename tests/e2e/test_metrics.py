"""The Prometheus endpoint against real workers: after a known set of runs on two worker
processes (one succeeds, one fails, one parks, one retries, one agent calls the LLM), ``ravel
metrics serve`` reports exactly those counts, and no label holds a run id."""

from __future__ import annotations

import re
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from models import StepRecord
from pipeline import get_run, start_run
from pipeline.store import get_db
from pipeline.testing import ScriptedLLMServer
from pipeline.testing.cluster import Proc
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RAVEL = str(Path(sys.executable).parent / "ravel")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    script = {
        "turns": [{"content": "42", "usage": {"prompt_tokens": 300, "completion_tokens": 20}}]
    }
    with ScriptedLLMServer(script) as server:
        yield server


def scrape(url: str) -> tuple[str, Samples]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_the_endpoint_reports_exactly_what_the_workers_did(
    cluster: Cluster, llm: ScriptedLLMServer, tmp_path: Path
) -> None:
    cluster.env.update(
        RAVEL_WORKFLOWS="tests.e2e.metrics_flows",
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_KEY="test",
        RAVEL_MODEL="gpt-4o-mini",
    )
    cluster.worker(concurrency=1, beat=True)
    cluster.worker(concurrency=1)
    ids = {
        name: start_run(name, {"message": "What is 6 x 7?"})
        for name in ("m_ok", "m_fail", "m_park", "m_retry", "m_agent")
    }
    expected = {
        "m_ok": "succeeded",
        "m_fail": "failed",
        "m_park": "waiting",
        "m_retry": "succeeded",
        "m_agent": "succeeded",
    }
    try:
        wait_for(
            lambda: {n: get_run(r).status for n, r in ids.items()} == expected,
            60,
            "the runs to settle",
        )
    except AssertionError:
        raise AssertionError(cluster.logs_tail()) from None

    exporter = Proc(
        "exporter",
        [RAVEL, "metrics", "serve", "--port", "0"],
        cluster._env(None),
        cluster.logs / "exporter.log",
    )
    cluster.procs.append(exporter)
    wait_for(
        lambda: "serving Prometheus metrics on" in exporter.log() or not exporter.alive(),
        30,
        "the exporter to listen",
    )
    assert exporter.alive(), exporter.log()
    url = re.search(r"http://\S+/metrics", exporter.log()).group(0)  # type: ignore[union-attr]
    text, samples = scrape(url)

    for name, status in expected.items():
        for other in (
            "pending",
            "running",
            "sleeping",
            "waiting",
            "succeeded",
            "failed",
            "cancelled",
        ):
            want = 1.0 if other == status else 0.0
            assert value(samples, "ravel_runs", workflow=name, status=other) == want, (name, other)
    attempts = "ravel_step_attempts_total"
    assert value(samples, attempts, workflow="m_ok", step="finish", outcome="done") == 1
    assert value(samples, attempts, workflow="m_fail", step="refuse", outcome="fail") == 1
    assert value(samples, attempts, workflow="m_park", step="ask", outcome="wait") == 1
    assert value(samples, attempts, workflow="m_retry", step="flaky", outcome="retry") == 1
    assert value(samples, attempts, workflow="m_retry", step="flaky", outcome="done") == 1
    assert value(samples, "ravel_step_retries_total", workflow="m_retry", step="flaky") == 1
    assert (
        value(
            samples,
            "ravel_step_duration_seconds_count",
            workflow="m_retry",
            step="flaky",
            outcome="retry",
        )
        == 1
    )
    # Every attempt recorded by any process, and no other: the step records agree.
    with get_db().engine.connect() as conn:
        steps = StepRecord.__table__
        recorded = conn.execute(select(func.count()).select_from(steps)).scalar_one()
    counted = sum(v for (n, _), v in samples.items() if n == attempts)
    assert counted == recorded == 7  # ok, fail, park, retry x2, agent reason + verify
    assert value(samples, "ravel_step_retries_total", workflow="m_ok", step="finish") is None
    assert value(samples, "ravel_runs_parked", workflow="m_park", kind="approval") == 1
    assert value(samples, "ravel_runs_parked_oldest_seconds", workflow="m_park") > 0  # type: ignore[operator]
    assert value(samples, "ravel_reaper_actions_total", action="woken") == 1
    assert value(samples, "ravel_reaper_passes_total") >= 1  # type: ignore[operator]
    assert value(samples, "ravel_reaper_last_pass_age_seconds") < 30  # type: ignore[operator]
    assert value(samples, "ravel_database_up") == 1
    assert value(samples, "ravel_runs_overdue", due="lease") == 0
    billed = llm.stats(ids["m_agent"])
    model = "gpt-4o-mini"
    assert (
        value(samples, "ravel_llm_tokens_total", workflow="m_agent", model=model)
        == billed["total_tokens"]
        == 320
    )
    assert (
        value(
            samples,
            "ravel_llm_call_duration_seconds_count",
            workflow="m_agent",
            model=model,
            outcome="ok",
        )
        == billed["calls"]
        == 1
    )
    assert value(
        samples, "ravel_llm_cost_usd_total", workflow="m_agent", model=model
    ) == pytest.approx(get_run(ids["m_agent"]).cost_usd)

    # The counts come from both workers' folders, written by several processes.
    folders = [p for p in (tmp_path / "home" / "metrics").iterdir() if p.is_dir()]
    assert len(folders) == 2, folders
    pids = {f.name.rsplit("_", 1)[1] for folder in folders for f in folder.glob("*.db")}
    assert len(pids) >= 2, pids
    # No label anywhere holds a run id (nor anything shaped like one).
    for (_, labels), _v in samples.items():
        for _k, label in labels:
            assert not UUID.search(label), label
    for run_id in ids.values():
        assert run_id not in text
