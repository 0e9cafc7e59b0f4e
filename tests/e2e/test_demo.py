"""`make demo` tells the whole story, and its exit code is its proof."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.testing.cluster import ROOT

pytestmark = [pytest.mark.slow]


def _demo(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RAVEL_", "CELERY_", "OPENAI_"))
    }
    env.update(RAVEL_DEMO_HOME=str(tmp_path / "demo"), PYTHONPATH=str(ROOT), **extra)
    return subprocess.run(
        [sys.executable, "-m", "examples.procurement.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_runs_and_proves_the_story(tmp_path: Path) -> None:
    # Settings exported in the reader's shell are the demo's to override, not to die of.
    done = _demo(tmp_path, RAVEL_WORKFLOWS="myapp.flows", RAVEL_DEFAULT_QUEUE="elsewhere")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    assert "FAIL" not in out
    for claim in (
        "exactly one PO at the vendor",
        "tokens billed equal an uninterrupted run",
        "the worker was killed mid-run and the run survived it",
        "the audit chain verifies",
    ):
        assert claim in out
    assert "SIGKILL" in out and "parked: waiting for finance-director" in out
    assert "Traceback" not in done.stderr
    # The audit command is printed on one line, to be copied, however long its paths are.
    [audit] = [line for line in out.splitlines() if line.startswith("Audit it any time: ")]
    assert (
        audit.endswith(
            f"--database-url sqlite:///{tmp_path / 'demo' / 'ravel.db'} runs "
            f"history {audit.split()[-1]}"
        )
        and len(audit.split()[-1]) == 36
    )


def test_demo_fails_when_its_proof_does_not_hold(tmp_path: Path) -> None:
    # A vendor that ignores Idempotency-Key takes the retried PO as a second order.
    done = _demo(tmp_path, RAVEL_DEMO_VENDOR_IGNORES_KEYS="1")
    assert done.returncode == 1, done.stdout[-4000:]
    assert "FAIL" in done.stdout and "2 order(s)" in done.stdout
