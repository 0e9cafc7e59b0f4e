"""The shared runner: scenarios, alternating rounds, summaries, the table and the JSON file.

A scenario is a function ``(Scale) -> Result`` registered with :func:`scenario`. It measures
Ravel and its baseline in the same process, alternating them round by round (:func:`alternate`)
so that drift and the load other processes put on the machine hit both alike, and reports
medians with their spread. The runner records ``/proc/loadavg`` before and after each scenario.
"""

from __future__ import annotations

import enum
import json
import os
import platform
import statistics
import subprocess
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


class Scale(enum.StrEnum):
    """How big the scenarios run: ``full`` is the issue's numbers, the others are quick."""

    TINY = "tiny"
    SMALL = "small"
    FULL = "full"

    def pick(self, full: Any, small: Any, tiny: Any) -> Any:
        """The value for this scale."""
        return {Scale.FULL: full, Scale.SMALL: small, Scale.TINY: tiny}[self]


@dataclass
class Summary:
    """Samples of one measure: median and spread (min, max)."""

    unit: str
    samples: list[float]

    @property
    def median(self) -> float:
        """The median sample."""
        return statistics.median(self.samples)

    def text(self, digits: int = 2) -> str:
        """``median (min-max)``, or the one value."""
        if len(self.samples) == 1:
            return f"{self.median:.{digits}f} {self.unit}".rstrip()
        lo, hi = min(self.samples), max(self.samples)
        return f"{self.median:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f}) {self.unit}".rstrip()

    def as_json(self) -> dict[str, Any]:
        """Median, min, max, n and the samples."""
        return {
            "unit": self.unit,
            "median": self.median,
            "min": min(self.samples),
            "max": max(self.samples),
            "n": len(self.samples),
            "samples": self.samples,
        }


@dataclass
class Row:
    """One line of the table: what was measured, the figure, the target and whether it is met."""

    what: str
    value: str
    target: str = ""
    met: bool | None = None


@dataclass
class Result:
    """What one scenario measured."""

    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    measures: dict[str, Summary] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def measure(self, name: str, unit: str, samples: Iterable[float]) -> Summary:
        """Record samples under ``name``; return their summary."""
        summary = Summary(unit, [float(s) for s in samples])
        self.measures[name] = summary
        return summary

    def row(self, what: str, value: str, target: str = "", met: bool | None = None) -> None:
        """Add a line to the table."""
        self.rows.append(Row(what, value, target, met))


@dataclass(frozen=True)
class Scenario:
    """A registered scenario: its key on the command line, its number in the issue."""

    key: str
    number: int
    title: str
    fn: Callable[[Scale], Result]


SCENARIOS: dict[str, Scenario] = {}

#: ``--rounds``: overrides every scenario's number of rounds when set.
OPTIONS: dict[str, int | None] = {"rounds": None}


def rounds_for(scale: Scale, full: int, small: int, tiny: int) -> int:
    """Rounds of a scenario at ``scale``, unless ``--rounds`` says otherwise."""
    return OPTIONS["rounds"] or scale.pick(full, small, tiny)


def scenario(
    key: str, number: int, title: str
) -> Callable[[Callable[[Scale], Result]], Callable[[Scale], Result]]:
    """Register ``fn`` as scenario ``key`` (numbered as in the issue)."""

    def register(fn: Callable[[Scale], Result]) -> Callable[[Scale], Result]:
        SCENARIOS[key] = Scenario(key, number, title, fn)
        return fn

    return register


def alternate(
    rounds: int, systems: dict[str, Callable[[], dict[str, float]]]
) -> dict[str, dict[str, list[float]]]:
    """Run each system once per round, reversing the order every other round.

    Each system returns named figures for one round; the result maps system, then figure, to
    the samples of every round. Reversing the order cancels a bias towards going first.
    """
    out: dict[str, dict[str, list[float]]] = {name: {} for name in systems}
    names = list(systems)
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            for figure, value in systems[name]().items():
                out[name].setdefault(figure, []).append(value)
    return out


def ratios(num: list[float], den: list[float]) -> list[float]:
    """Round-by-round ratios (each round's systems ran back to back, under the same load)."""
    return [a / b for a, b in zip(num, den, strict=True) if b]


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (``/proc/loadavg``)."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict[str, Any]:
    """The machine and software the figures were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_commit() -> str:
    """The commit the benchmark ran at (with ``+dirty`` when the tree has changes)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except OSError:
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def run(keys: list[str], scale: Scale, out: Path | None = None) -> dict[str, Any]:
    """Run the scenarios ``keys`` in order; return the results as stored in the JSON file.

    With ``out``, the file is rewritten after each scenario: a long run cut short keeps the
    figures of the scenarios it finished.
    """
    from bench.versions import versions  # imports the systems: only when running

    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": scale.value,
        "commit": git_commit(),
        "machine": machine(),
        "versions": versions(),
        "scenarios": {},
    }
    for key in keys:
        sc = SCENARIOS[key]
        start, began = loadavg(), time.monotonic()
        print(f"== {sc.number}. {sc.title} (load {start[0]:.2f})", flush=True)
        try:
            result = sc.fn(scale)
            entry: dict[str, Any] = {
                "title": sc.title,
                "number": sc.number,
                "rows": [asdict(r) for r in result.rows],
                "measures": {k: v.as_json() for k, v in result.measures.items()},
                "settings": result.settings,
                "notes": result.notes,
            }
        except Exception as exc:  # one scenario's failure must not lose the others' figures
            traceback.print_exc()
            result = Result(key, sc.title, notes=[f"failed: {type(exc).__name__}: {exc}"])
            entry = {
                "title": sc.title,
                "number": sc.number,
                "rows": [],
                "measures": {},
                "settings": {},
                "notes": result.notes,
                "failed": True,
            }
        entry["loadavg"] = {"start": start, "end": loadavg()}
        entry["seconds"] = round(time.monotonic() - began, 1)
        report["scenarios"][key] = entry
        print(table({key: entry}), flush=True)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=1) + "\n")
    return report


def table(scenarios: dict[str, Any]) -> str:
    """The Markdown table of stored results."""
    lines = [
        "| # | what | measured: median (min-max) | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for entry in scenarios.values():
        for row in entry["rows"]:
            met = {True: "yes", False: "**no**", None: ""}[row["met"]]
            lines.append(
                f"| {entry['number']} | {row['what']} | {row['value']} | {row['target']} | {met} |"
            )
        load = entry["loadavg"]
        notes = "; ".join(
            [
                *entry["notes"],
                f"load {load['start'][0]:.2f} -> {load['end'][0]:.2f}, {entry['seconds']:.0f} s",
            ]
        )
        lines.append(f"| {entry['number']} | _{entry['title']}_ | {notes} | | |")
    return "\n".join(lines)


def result_path(folder: Path = RESULTS) -> Path:
    """``<folder>/<date>.json`` for a new run (a second run that day gets a suffix)."""
    stem = datetime.now(UTC).strftime("%Y-%m-%d")
    path, n = folder / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.json"
    return path
