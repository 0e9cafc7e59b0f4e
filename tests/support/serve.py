"""``ravel serve`` as a real process of a test cluster (waitress), and waiting for it."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.testing.cluster import ROOT, Cluster, Proc, wait_for

RAVEL = str(Path(sys.executable).parent / "ravel")


def start_serve(
    cluster: Cluster, keys_file: Path, port: int, extra_env: dict[str, str] | None = None
) -> Proc:
    """Start ``ravel serve`` on ``port`` with the cluster's database and broker; wait until
    it answers. It gets no workflow code (workers record theirs)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RAVEL_", "CELERY_", "OPENAI_"))
    }
    env.update(cluster.env, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.pop("RAVEL_WORKFLOWS", None)
    env.update(extra_env or {})
    proc = Proc(
        "serve",
        [
            RAVEL,
            "serve",
            "--port",
            str(port),
            "--threads",
            "4",
            "--timeout",
            "30",
            "--keys-file",
            str(keys_file),
        ],
        env,
        cluster.logs / "serve.log",
    )
    cluster.procs.append(proc)

    def up() -> bool:
        assert proc.alive(), proc.log()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=5):
                return True
        except (OSError, urllib.error.URLError):
            return False

    wait_for(up, 30, "ravel serve to answer")
    return proc
