"""Canary secrets in model output, tool output and errors never reach the database or logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import text

from models import Base
from pipeline import Agent, get_run, start_run, tool
from pipeline.store import get_db
from tests.support.agents import scripted_llm, settle, unique
from tests.support.inline import InlineDispatcher

OPENAI_CANARY = "sk-canaryA1b2C3d4E5f6G7h8"
SLACK_CANARY = "xoxb-123456789012-canaryZZ"


def _dump() -> str:
    """Every row of every Ravel table, as text."""
    out = []
    with get_db().engine.connect() as conn:
        for name in Base.metadata.tables:
            out += [repr(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {name}"))]
    return "\n".join(out)


def test_canaries_are_redacted_everywhere(
    any_db: str,
    inline: InlineDispatcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    @tool
    def fetch_config(name: str) -> dict[str, Any]:
        """Read a config entry.

        Args:
            name: the entry.
        """
        return {"name": name, "token": SLACK_CANARY, "note": f"key is {OPENAI_CANARY}"}

    @tool
    def explode() -> str:
        """Fails with a secret in its message."""
        raise RuntimeError(f"auth failed for Bearer {OPENAI_CANARY}")

    name = unique("canary")
    Agent(name, "Be careful.", tools=[fetch_config, explode], max_turns=6)
    caplog.set_level(logging.DEBUG)
    with scripted_llm(monkeypatch) as llm:
        llm.set_script(
            {
                "turns": [
                    {"tool_calls": [{"name": "fetch_config", "arguments": {"name": "slack"}}]},
                    {
                        "content": f"I found {SLACK_CANARY} and {OPENAI_CANARY}.",
                        "tool_calls": [{"name": "explode", "arguments": {}}],
                    },
                    {"content": f"Done; the key was {OPENAI_CANARY}."},
                ]
            }
        )
        run_id = start_run(name, {"message": "read the slack config"})
        run = settle(inline, run_id)

    # The tool keeps failing: its retries run out and the run fails with the error, redacted.
    assert run.status == "failed", run
    assert "auth failed for Bearer [redacted]" in (run.error or "")
    assert get_run(run_id).tokens > 0
    dump = _dump()
    assert "fetch_config" in dump  # the dump does hold the run's conversation
    for canary in (OPENAI_CANARY, SLACK_CANARY):
        assert canary not in dump, f"{canary} was stored"
        assert canary not in caplog.text, f"{canary} was logged"
