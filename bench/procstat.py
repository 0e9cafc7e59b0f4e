"""CPU time and memory of the processes a benchmark loads, read from ``/proc``.

CPU seconds are user plus system time. A worker is its whole session (the main process and
its pool children: :class:`pipeline.testing.cluster.Proc` starts each in its own session);
PostgreSQL is the backends connected to the benchmark's database (the server's shared
processes, WAL writer and checkpointer, serve every database and are left out); Redis is the
whole ``redis-server`` process, which other programs on the machine may use too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import create_engine, text

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields follow its last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process (0 if it is gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK if fields else 0.0


def session_pids(sid: int) -> list[int]:
    """Every live process of session ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[3]) == sid:
                pids.append(int(entry.name))
    return pids


def pids_named(name: str) -> list[int]:
    """Processes whose command name is ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def backend_pids(admin_url: str, database: str) -> list[int]:
    """PostgreSQL backends connected to ``database`` now."""
    engine = create_engine(admin_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": database}
            )
            return [int(r[0]) for r in rows]
    finally:
        engine.dispose()


def rss_mib(pid: int) -> float:
    """Resident memory of one process in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class CpuMeter:
    """CPU seconds used between :meth:`start` and :meth:`stop` by a changing set of processes.

    ``pids`` is asked at both ends: a process seen only at the end counts from zero (a pool
    child that replaced another, a new database connection); one gone by the end is lost.
    """

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        """Meter the processes ``pids()`` names."""
        self._pids = pids
        self._before: dict[int, float] = {}

    def start(self) -> None:
        """Read every process's CPU time now."""
        self._before = {p: cpu_seconds(p) for p in self._pids()}

    def stop(self) -> float:
        """CPU seconds used since :meth:`start`."""
        now = {p: cpu_seconds(p) for p in {*self._pids(), *self._before}}
        return sum(max(0.0, v - self._before.get(p, 0.0)) for p, v in now.items())


def redis_pid(port: int) -> list[int]:
    """The ``redis-server`` listening on ``port`` (by its command line), as a list."""
    for pid in pids_named("redis-server"):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if f":{port}" in argv:
            return [pid]
    return []
