"""A worker or beat started with a bad setting says so in one line and exits 1, instead of
Celery's "Unable to load celery application" and a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.testing.cluster import Cluster, wait_for

SUPPORTED = "Ravel supports postgresql:// (production) and sqlite:/// (embedded default)"


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            {"RAVEL_DATABASE_URL": "mysql://ravel:s3cret@db/ravel"},
            f"ravel cannot start: unsupported database mysql:// in RAVEL_DATABASE_URL; {SUPPORTED}",
        ),
        (
            {"RAVEL_WORKFLOWS": "myapp.nowhere"},
            "ravel cannot start: RAVEL_WORKFLOWS names 'myapp.nowhere', which cannot be imported",
        ),
    ],
)
def test_a_bad_setting_stops_worker_and_beat_in_one_line(
    tmp_path: Path, setting: dict[str, str], expected: str
) -> None:
    (tmp_path / "logs").mkdir()
    env = {
        "RAVEL_HOME": str(tmp_path / "home"),
        "RAVEL_BROKER_URL": "filesystem://",
        "RAVEL_WORKFLOWS": "tests.e2e.flows",
        **setting,
    }
    cluster = Cluster(env, tmp_path / "logs")
    try:
        for proc in (cluster.worker(ready=False), cluster.beat()):
            wait_for(lambda: not proc.alive(), 60, f"{proc.name} to exit")  # noqa: B023
            log = proc.log()
            assert proc.popen.returncode == 1, log[-3000:]
            assert log.strip().startswith(expected), log[-3000:]
            assert len(log.strip().splitlines()) == 1, log[-3000:]
            assert "Traceback" not in log and "s3cret" not in log
    finally:
        cluster.stop_all()
