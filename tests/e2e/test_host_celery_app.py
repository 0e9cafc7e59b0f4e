"""A host project's Celery app with Ravel installed refuses to start, in one line and with
exit code 1, when its settings conflict with Ravel's or a workflow module is missing: at
import for a setting, when the worker loads the workflows for a module."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.testing.cluster import CELERY, Cluster, Proc, wait_for

BROKER = "redis://127.0.0.1:6379/13"  # never reached: the worker stops before connecting


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            {"HOST_PREFETCH": "4"},
            "ravel cannot start: the Celery app 'hostproj' cannot run Ravel's steps: (1) "
            "worker_prefetch_multiplier is 4",
        ),
        (
            {"RAVEL_WORKFLOWS": "myapp.nowhere"},
            "ravel cannot start: RAVEL_WORKFLOWS names 'myapp.nowhere', which cannot be imported",
        ),
    ],
)
def test_a_host_worker_with_a_conflicting_setting_stops_in_one_line(
    tmp_path: Path, setting: dict[str, str], expected: str
) -> None:
    (tmp_path / "logs").mkdir()
    env = {
        "RAVEL_HOME": str(tmp_path / "home"),
        "RAVEL_BROKER_URL": BROKER,
        "RAVEL_WORKFLOWS": "tests.e2e.http_flows",
        **setting,
    }
    cluster = Cluster(env, tmp_path / "logs")
    proc = Proc(
        "host",
        [CELERY, "-A", "tests.e2e.host_app", "worker", "--loglevel", "INFO"],
        cluster._env(None),
        tmp_path / "logs" / "host.log",
    )
    cluster.procs.append(proc)
    try:
        wait_for(lambda: not proc.alive(), 60, "the host worker to exit")
        log = proc.log()
        assert proc.popen.returncode == 1, log[-3000:]
        assert expected in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        assert log.strip().splitlines()[-1].startswith("ravel cannot start:"), log[-3000:]
    finally:
        cluster.stop_all()
