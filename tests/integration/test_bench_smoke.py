"""``python -m bench`` runs a scenario and writes its JSON (the figures themselves are never
asserted: timings stay out of the tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import redis_available

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_start_rate_run_prints_its_table_and_writes_json(pg_db: str, tmp_path: Path) -> None:
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("Redis is not reachable (required in CI)")
        pytest.skip("Redis is not reachable")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAVEL_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "start_rate",
            "--scale",
            "tiny",
            "--rounds",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| 3 | start_run / apply_async rate |" in done.stdout
    [written] = tmp_path.glob("*.json")
    report = json.loads(written.read_text())
    entry = report["scenarios"]["start_rate"]
    assert entry["measures"]["start_run_per_s"]["n"] == 1
    assert entry["measures"]["start_run_per_s"]["median"] > 0
    # A start's two halves, each timed alone, and the whole start they are set against.
    measures = entry["measures"]
    assert measures["start_run_ms"]["median"] == pytest.approx(
        1000 / measures["start_run_per_s"]["median"]
    )
    for half in ("insert_only_ms", "publish_only_ms"):
        assert measures[half]["n"] == 1 and measures[half]["median"] > 0, measures
    assert "| 3 | a start: its insert alone |" in done.stdout
    assert "| 3 | a start: its publish alone |" in done.stdout
    assert len(entry["loadavg"]["start"]) == 3 and len(entry["loadavg"]["end"]) == 3
    assert report["scale"] == "tiny" and report["versions"]["celery"]
