"""One nemesis run: start the world, inject the schedule while the driver works, settle, collect.

The harness starts a private PostgreSQL and a private broker (each behind a proxy), the
scripted LLM server (one route per agent run), the world stub, the workers and beat; then the
driver and the fault schedule run for ``duration`` seconds. Afterwards every fault is healed
and the harness waits until each run has finished or parked where the driver leaves it. What
the checker needs is collected in an :class:`Outcome`, the folder keeps every log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import dispatch, store
from pipeline.agent.llm import request_timeout
from pipeline.migrate import upgrade
from pipeline.settings import reload_settings
from pipeline.store import get_db, runs
from pipeline.testing import ScriptedLLMServer
from pipeline.testing.nemesis.backends import Broker, Database
from pipeline.testing.nemesis.checker import check
from pipeline.testing.nemesis.driver import Driver
from pipeline.testing.nemesis.fleet import Fleet
from pipeline.testing.nemesis.history import History, load
from pipeline.testing.nemesis.injector import Injector
from pipeline.testing.nemesis.jsonlog import JsonLog
from pipeline.testing.nemesis.plan import AGENT, RunPlan, draw_plans
from pipeline.testing.nemesis.schedule import ALL_KINDS, Fault, draw_schedule
from pipeline.testing.nemesis.script import build_script, fault_turns
from pipeline.testing.nemesis.vendor import WorldServer
from pipeline.testing.nemesis.verdict import Verdict

LEASE = 3.0
REAPER = 0.5
REDISPATCH = 2.0
STEP_LIMIT = 20.0
#: an LLM hang outlasts the client's timeout by this much
HANG_MARGIN = 3.0


@dataclass(frozen=True)
class Options:
    """What to run (the command line's options)."""

    seed: int
    runs: int = 200
    duration: float = 300.0
    broker: str = "redis"
    mutant: str | None = None
    workers: int = 3
    concurrency: int = 3
    settle: float = 240.0
    kinds: tuple[str, ...] = ALL_KINDS
    out: Path | None = None
    cancel_share: float = 0.12


@dataclass
class Outcome:
    """What a nemesis run left for the checker."""

    options: Options
    folder: Path
    salt: str
    hang: float
    plans: list[RunPlan]
    schedule: list[Fault]
    database_url: str
    injected: dict[str, int] = field(default_factory=dict)
    injector_errors: list[str] = field(default_factory=list)
    llm_stats: dict[str, Any] = field(default_factory=dict)
    broker_dump: str = ""
    settled: bool = False
    seconds: float = 0.0
    check_seconds: float = 0.0
    history: History | None = None
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every invariant held."""
        return bool(self.verdicts) and all(v.ok for v in self.verdicts)

    @property
    def actions(self) -> Path:
        """The driver's action log."""
        return self.folder / "actions.jsonl"

    @property
    def faults(self) -> Path:
        """The fault log."""
        return self.folder / "faults.jsonl"

    @property
    def vendor(self) -> Path:
        """The world's log of POSTs."""
        return self.folder / "vendor.jsonl"

    @property
    def logs(self) -> Path:
        """The processes' logs."""
        return self.folder / "logs"


def _use(env: dict[str, str]) -> None:
    """Point this process (the driver's API calls) at the run's database and broker."""
    for name in list(os.environ):
        if name.startswith(("RAVEL_", "CELERY_")):
            del os.environ[name]
    os.environ.update(env)
    reload_settings()
    store.reset_db()
    _forget_publisher()


def _restore(saved: dict[str, str]) -> None:
    """Give this process its environment back (a test process goes on with other tests)."""
    os.environ.clear()
    os.environ.update(saved)
    reload_settings()
    store.reset_db()
    _forget_publisher()


def _forget_publisher() -> None:
    """Drop a wake-up publisher built for other settings (``tasks.dispatch`` caches one)."""
    dispatch.set_dispatcher(None)
    loaded = sys.modules.get("tasks.dispatch")
    cached = getattr(loaded, "_publisher", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


def run(options: Options) -> Outcome:
    """Run the nemesis, check the history; the outcome holds the verdicts and the report data."""
    began = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = ((options.out or Path(".ravel/nemesis")) / f"seed-{options.seed}-{stamp}").absolute()
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    salt = f"nemesis-{options.seed}"
    hang = request_timeout(STEP_LIMIT) + HANG_MARGIN
    plans = draw_plans(
        options.seed, options.runs, options.duration, cancel_share=options.cancel_share
    )
    schedule = draw_schedule(options.seed, options.duration, options.workers, LEASE, options.kinds)
    with contextlib.ExitStack() as stack:
        stack.callback(_restore, dict(os.environ))
        rig = _rig(options, folder, plans, salt, hang, stack)
        outcome = Outcome(options, folder, salt, hang, plans, schedule, rig.database.direct_url)
        _exercise(rig, outcome)
        outcome.seconds = time.monotonic() - began
        # While the database still runs: the checker reads it.
        outcome.history = load(
            outcome.database_url,
            plans,
            folder,
            salt=salt,
            hang=hang,
            llm_stats=outcome.llm_stats,
            broker_text=outcome.broker_dump,
        )
        outcome.verdicts = check(outcome.history)
        outcome.check_seconds = time.monotonic() - began - outcome.seconds
    return outcome


@dataclass
class _Rig:
    """What one nemesis run started (each stopped by the run's exit stack)."""

    database: Database
    broker: Broker
    llm: ScriptedLLMServer
    fleet: Fleet
    faults: JsonLog
    queue: str


def _rig(
    options: Options,
    folder: Path,
    plans: list[RunPlan],
    salt: str,
    hang: float,
    stack: contextlib.ExitStack,
) -> _Rig:
    """Start the servers, proxies, scripted LLM, world, workers and beat."""
    # This process's warnings (a publish that failed while the broker was down ...) go to a
    # log of their own, which the canary search reads too.
    handler = logging.FileHandler(folder / "logs" / "harness.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(name)s] %(message)s"))
    logging.getLogger().addHandler(handler)
    stack.callback(logging.getLogger().removeHandler, handler)
    database = Database(folder / "pg")
    stack.callback(database.close)
    broker = Broker(options.broker, folder / "broker")
    stack.callback(broker.close)
    llm = ScriptedLLMServer(build_script(plans, salt, hang)).start()
    stack.callback(llm.stop)
    refusals = {p.tag: p.erp_refusals for p in plans if p.erp_refusals}
    world = WorldServer(folder / "vendor.jsonl", salt, refusals).start()
    stack.callback(world.stop)
    queue = f"nemesis-{options.seed}"
    common = {
        "RAVEL_HOME": str(folder / "home"),
        "RAVEL_DEFAULT_QUEUE": queue,
        "RAVEL_LEASE_SECONDS": str(LEASE),
        "RAVEL_REAPER_INTERVAL": str(REAPER),
        "RAVEL_REDISPATCH_AFTER": str(REDISPATCH),
        "RAVEL_STEP_TIME_LIMIT": str(STEP_LIMIT),
    }
    _use(
        {**common, "RAVEL_DATABASE_URL": database.direct_url, "RAVEL_BROKER_URL": broker.direct_url}
    )
    upgrade(database.direct_url)
    faults = JsonLog(folder / "faults.jsonl")
    fleet = Fleet(
        {
            **common,
            "RAVEL_DATABASE_URL": database.proxied_url,
            "RAVEL_BROKER_URL": broker.proxied_url,
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "scripted",
            "RAVEL_MODEL": "gpt-4o-mini",
            "NEMESIS_WORLD_URL": world.url,
        },
        folder / "logs",
        faults,
        count=options.workers,
        concurrency=options.concurrency,
        mutant=options.mutant,
    )
    stack.callback(fleet.stop_all)
    fleet.start_all()
    _await_registry()
    for plan in plans:  # served when the run reaches the turn: no time of their own
        for turn, kind in fault_turns(plan, salt, hang).items():
            faults.write("scripted", fault=f"llm_{kind}", tag=plan.tag, turn=turn)
    return _Rig(database, broker, llm, fleet, faults, queue)


def _exercise(rig: _Rig, outcome: Outcome) -> None:
    """The fault phase with the driver at work, the heal, the settling, then collect."""
    options = outcome.options
    stop = threading.Event()
    driver = Driver(outcome.plans, JsonLog(outcome.actions), stop)
    injector = Injector(
        outcome.schedule,
        rig.fleet,
        rig.broker,
        rig.database,
        rig.faults,
        rig.queue,
        outcome.folder / "once",
    )
    rig.faults.write("phase", phase="faults", duration=options.duration)
    driver.start()
    injector.start()
    time.sleep(options.duration)
    injector.stop()
    _heal(rig.fleet, rig.broker, rig.database)
    rig.faults.write("phase", phase="settle")
    outcome.settled = _settle(driver, options.settle)
    rig.faults.write("phase", phase="check", settled=outcome.settled)
    stop.set()
    driver.join()
    outcome.injected = dict(injector.injected)
    outcome.injector_errors = list(injector.errors)
    outcome.llm_stats = {rid: rig.llm.stats(rid) for rid in _run_ids()}
    outcome.broker_dump = rig.broker.dump()
    rig.fleet.stop_all()
    rig.faults.write("phase", phase="stopped")


def _await_registry(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while runs.get_workflow(get_db(), AGENT) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("no worker registered the nemesis workload; see the worker logs")
        time.sleep(0.2)


def _heal(fleet: Fleet, broker: Broker, database: Database) -> None:
    """End every fault: servers up, proxies forwarding, every worker running."""
    for backend in (broker, database):
        backend.proxy.heal()
        if not backend.server.running():
            backend.server.start()
    fleet.heal()


def _settle(driver: Driver, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.settled():
            return True
        time.sleep(0.5)
    return False


def _run_ids() -> list[str]:
    from pipeline import list_runs

    return [r.id for r in list_runs(limit=10_000)]
