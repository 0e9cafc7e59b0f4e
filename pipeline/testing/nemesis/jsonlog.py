"""Append-only JSONL logs (actions, faults, vendor posts), written from several threads."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any


class JsonLog:
    """One JSON object per line, each stamped with ``t`` (Unix time) and ``kind``."""

    def __init__(self, path: Path) -> None:
        """Append to ``path`` (created with its folder)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the run
        self._lock = threading.Lock()

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one entry now; return it."""
        entry = {"t": time.time(), "kind": kind, **fields}
        line = json.dumps(entry, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
        return entry

    def close(self) -> None:
        """Close the file (later writes fail)."""
        with self._lock:
            self._file.close()


def read(path: Path) -> list[dict[str, Any]]:
    """Every entry of a JSONL log (none if the file does not exist)."""
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
