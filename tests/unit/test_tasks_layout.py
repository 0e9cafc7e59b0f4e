"""The Celery layer's module layout and log filter (no services)."""

from __future__ import annotations

import logging
import subprocess
import sys

from pipeline.testing.cluster import ROOT
from tasks.reaper import QuietReaperPasses


def test_publishing_module_does_not_build_the_worker_app() -> None:
    """tasks.dispatch and tasks.config import without tasks.app (no cycle, no workflow load);
    ``tasks.app`` is still there for ``celery -A tasks``."""
    code = (
        "import sys, tasks.dispatch, tasks.config\n"
        "assert 'tasks.app' not in sys.modules, 'tasks.app was built'\n"
        "import tasks\n"
        "assert type(tasks.app).__name__ == 'Celery'\n"
        "assert 'ravel.reap' in tasks.app.tasks\n"
        "from tasks import app\n"
        "assert app is tasks.app\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "RAVEL_HOME": "/nonexistent"},
    )
    assert done.returncode == 0, done.stderr


def _record(level: int, msg: str, args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("celery", level, __file__, 1, msg, None, None)
    record.args = args  # type: ignore[assignment]
    record.__dict__.update(extra)
    return record


def test_reaper_passes_are_quiet_but_their_errors_are_not() -> None:
    keep = QuietReaperPasses().filter
    reap = {"name": "ravel.reap", "id": "1"}
    step = {"name": "refund.check", "id": "2"}
    assert not keep(_record(logging.INFO, "Task %(name)s[%(id)s] received", reap, data=reap))
    assert not keep(
        _record(logging.INFO, "Scheduler: Sending due task %s (%s)", ("ravel-reaper", "ravel.reap"))
    )
    assert keep(_record(logging.INFO, "Task %(name)s[%(id)s] received", step, data=step))
    assert keep(_record(logging.ERROR, "Task %(name)s[%(id)s] raised", reap, data=reap))
