"""Log lines about a run carry its fields, as text or JSON lines, with secrets masked; without
the otel extra nothing imports opentelemetry (no services)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest

from pipeline.errors import ConfigurationError
from pipeline.telemetry import logs
from pipeline.testing.cluster import ROOT

CANARY = "sk-canary0123456789abcdef"


def _capture(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logs.install([handler], fmt)
    logs.install([handler], fmt)  # again, as Celery sets its loggers up twice: no doubles
    logger = logging.getLogger(f"test.telemetry.{fmt}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_carry_the_run_fields_and_mask_secrets() -> None:
    logger, stream = _capture("json")
    logger.info("before any run")
    with logs.run_context(run_id="r-1", workflow="refund", step="check", seq=2):
        logs.bind(attempt=3)
        logger.warning("calling the vendor with %s", CANARY)
        try:
            raise RuntimeError(f"vendor refused {CANARY}")
        except RuntimeError:
            logger.exception("step failed")
        with logs.run_context(step="pay"):
            logger.info("nested")
        logger.info("back", extra=logs.run_fields("r-2", "other"))
    logger.info("after the run")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert CANARY not in stream.getvalue() and "[redacted]" in lines[1]["message"]
    assert [(x.get("run_id"), x.get("step"), x.get("attempt")) for x in lines] == [
        (None, None, None),
        ("r-1", "check", 3),
        ("r-1", "check", 3),
        ("r-1", "pay", 3),
        ("r-2", "check", 3),
        (None, None, None),
    ]
    assert lines[1]["workflow"] == "refund" and lines[1]["seq"] == 2
    assert lines[1]["level"] == "WARNING" and lines[1]["logger"] == logger.name
    assert "RuntimeError: vendor refused [redacted]" in lines[2]["exc"]
    assert lines[4]["workflow"] == "other"  # a record's own fields win
    assert lines[0]["ts"].endswith("+00:00")


def test_text_lines_get_the_run_fields_appended_and_secrets_masked() -> None:
    logger, stream = _capture("text")
    with logs.run_context(run_id="r-1", workflow="refund", step="check", seq=0, attempt=1):
        logger.info("working with Bearer %s", "abcdefgh12345678")
    logger.info("outside")
    first, second = stream.getvalue().splitlines()
    assert first == (
        "INFO test.telemetry.text: working with [redacted] "
        "[run_id=r-1 workflow=refund step=check seq=0 attempt=1]"
    )
    assert second == "INFO test.telemetry.text: outside"


def test_an_unknown_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAVEL_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match="RAVEL_LOG_FORMAT='xml' is not a log format"):
        logs.log_format()
    monkeypatch.setenv("RAVEL_LOG_FORMAT", "JSON")
    assert logs.log_format() == "json"


def test_without_the_otel_extra_nothing_imports_opentelemetry() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'opentelemetry':\n"
        "            raise ImportError('no otel here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pipeline, pipeline.engine, pipeline.web\n"
        "from pipeline import telemetry\n"
        "from pipeline.telemetry import spans\n"
        "assert spans.tracer() is None\n"
        "class Ctx: run_id = '0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10'\n"
        "assert telemetry.traced_call(Ctx(), 'effect', 'x', lambda: 41) == 41\n"
        "with telemetry.step_scope(Ctx.run_id, 0, 'a', 'flow', 'w') as scope:\n"
        "    telemetry.claimed('flow', 1, 'a', 0, 1)\n"
        "    scope.finished('succeeded', None, committed=True)\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    # With the extra installed, importing Ravel still loads none of it until a span is made.
    lazy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pipeline, pipeline.engine, pipeline.web, tasks.config;"
            "print([m for m in sys.modules if m.startswith('opentelemetry')])",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert lazy.stdout.strip() == "[]", lazy.stderr
