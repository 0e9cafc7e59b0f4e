"""A real worker posts each parked approval to Slack once, also when the pool process that
parked the run is killed between the park's commit and queueing the message."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline import get_run, start_run
from tests.support.slack_stub import SlackStub
from tests.support.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow]


def test_a_worker_posts_each_approval_once_even_after_a_kill_before_queueing(
    embedded_cluster: Cluster, tmp_path: Path
) -> None:
    with SlackStub() as stub:
        worker = embedded_cluster.worker(
            {
                "SLACK_BOT_TOKEN": "xoxb-e2e",
                "RAVEL_SLACK_CHANNEL": "C0E2E",
                "RAVEL_SLACK_API_URL": stub.api_url,
                # The first run to park kills its pool process right after the park commits.
                "RAVEL_FAULTS": "after_commit_before_publish@propose=kill",
            }
        )
        assert "approval messages go to Slack channel C0E2E" in worker.log()
        runs = [
            start_run("e2e_approval", {"ledger": str(tmp_path / f"ledger{i}.txt")})
            for i in range(2)
        ]
        wait_for(lambda: all(get_run(r).status == "waiting" for r in runs), 60, "both runs to park")
        assert (tmp_path / "faults" / "after_commit_before_publish@propose").exists()

        def posted() -> list[str]:
            return [p.body["metadata"]["event_payload"]["run_id"] for p in stub.posts()]

        wait_for(lambda: len(posted()) >= 2, 30, "both approvals to be posted")
        time.sleep(3)  # longer than the courier's pass interval: no second message comes
        assert sorted(posted()) == sorted(runs), embedded_cluster.logs_tail()
        assert all(p.headers["Authorization"] == "Bearer xoxb-e2e" for p in stub.posts())
