"""The README's refund example runs as written: ``python -m examples.refund.run`` against a
real worker started as the README shows, on PostgreSQL + Redis and on the embedded default."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import get_run
from pipeline.testing.cluster import ROOT, Cluster


def _app(cluster: Cluster, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``python argv...`` as a separate app process, with the workers' settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RAVEL_", "CELERY_", "OPENAI_"))
    }
    env.update(cluster.env, PYTHONPATH=str(ROOT))
    # The app process needs no workflow code: workers record the workflows they serve.
    env.pop("RAVEL_WORKFLOWS", None)
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def _script(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    return _app(cluster, "-m", "examples.refund.run", "--timeout", "60")


@pytest.mark.slow
def test_the_refund_example_parks_is_approved_and_pays_once(cluster: Cluster) -> None:
    cluster.worker(extra_env={"RAVEL_WORKFLOWS": "examples.refund.flow"}, beat=True)
    done = _script(cluster)
    assert done.returncode == 0, done.stdout + done.stderr + cluster.logs_tail()
    out = done.stdout
    run_id = re.search(r"^run (\S+) started: refund of order 42$", out, re.M)
    assert run_id is not None, out
    assert "parked: Refund 250.0? (approvers: finance, wait " in out
    assert "approved by finance" in out
    assert f"run {run_id[1]} succeeded: {{'refunded': 250.0}}" in out
    assert "payments for order 42: 1 (1 request(s) to the payment service)" in out
    approved = [line.split() for line in out.splitlines() if " wait.approved " in line]
    assert [fields[3:5] for fields in approved] == [["finance", "refund"]], out
    assert "Traceback" not in done.stderr

    assert get_run(run_id[1]).status == "succeeded"
    ledger = json.loads(
        (Path(cluster.env["RAVEL_HOME"]) / "refund-example" / "payments.json").read_text()
    )
    assert [(p["order_id"], p["amount"]) for p in ledger["payments"]] == [(42, 250.0)]

    # Again: the idempotency key finds the finished run; nothing is paid a second time.
    again = _script(cluster)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"run {run_id[1]} started" in again.stdout and "parked" not in again.stdout
    assert "payments for order 42: 1 (1 request(s) to the payment service)" in again.stdout


def test_without_a_worker_the_script_says_what_is_missing(cluster: Cluster) -> None:
    done = _script(cluster)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: unknown workflow 'refund'"), done.stderr
    assert "RAVEL_WORKFLOWS" in done.stderr and "Traceback" not in done.stderr


def _readme_blocks() -> list[str]:
    """The python code blocks of the README's "Use it from your app" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use it from your app\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_shows_the_example_s_workflow() -> None:
    flow, _app = _readme_blocks()
    source = (ROOT / "examples" / "refund" / "flow.py").read_text().splitlines()
    lines = iter(source)
    missing = [line for line in flow.splitlines() if line and line not in lines]
    assert missing == [], "README lines not in examples/refund/flow.py (in order)"


@pytest.mark.slow
def test_the_readme_snippet_runs_as_written(pg_cluster: Cluster) -> None:
    _flow, app = _readme_blocks()
    pg_cluster.worker(extra_env={"RAVEL_WORKFLOWS": "examples.refund.flow"}, beat=True)
    done = _app(pg_cluster, "-c", app)
    assert done.returncode == 0, done.stdout + done.stderr + pg_cluster.logs_tail()
    lines = done.stdout.splitlines()
    assert lines[0] == "succeeded {'refunded': 250.0}"
    kinds = [line.split()[2] for line in lines[1:]]
    assert kinds[:4] == ["run.started", "step.started", "step.succeeded", "run.waiting"]
    assert "wait.approved" in kinds and kinds[-1] == "run.succeeded"
