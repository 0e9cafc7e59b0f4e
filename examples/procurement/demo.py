"""``make demo``: the procurement story, end to end, on the embedded default.

1. A reference run, uninterrupted and in-process, to know what the story costs in tokens.
2. The real run on worker processes (SQLite + filesystem broker under ``.ravel/demo``):
   the agent checks inventory, prices five laptops, drafts a PO and parks for the finance
   director's approval, announced in Slack (a local sink).
3. Every worker process is stopped while the run waits ("three days pass, the server
   restarts"), then a new worker starts and the finance director approves.
4. The worker is SIGKILLed right after the vendor accepted the PO, before Ravel recorded it.
   A new worker takes over: the PO is re-sent with the same Idempotency-Key, the vendor
   returns the original order, and the run goes on to the ERP update and the notification.
5. The timeline and the proof: one PO at the vendor, tokens billed equal to the reference run,
   an intact audit chain. The exit code is 0 only if every claim of the proof holds.

With ``OPENAI_API_KEY`` set and no ``OPENAI_BASE_URL``, the agent talks to the real model and
the token comparison is left out (a real model's replies differ from run to run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HOME = Path(os.environ.get("RAVEL_DEMO_HOME", ".ravel/demo")).absolute()
REQUEST = {
    "message": "We need five new MacBook Pros for the design team.",
    "requester": "dana@design",
}
SCRIPT = Path(__file__).with_name("script.json")


def _own_environment() -> dict[str, str]:
    """Drop the Ravel and Celery settings exported in the shell; return what was dropped.

    The demo sets what its processes need. An exported ``RAVEL_WORKFLOWS`` naming the
    reader's own module, or a ``RAVEL_DEFAULT_QUEUE`` its workers do not consume, would
    otherwise break it.
    """
    dropped = {}
    for name in list(os.environ):
        if name.startswith(("RAVEL_", "CELERY_")) and not name.startswith("RAVEL_DEMO_"):
            dropped[name] = os.environ.pop(name)
    return dropped


def _audit_command(run_id: str) -> str:
    """The command that prints the run's history, to be copied: the venv's ``ravel``."""
    ravel = Path(sys.executable).parent / "ravel"
    database = HOME / "ravel.db"
    with contextlib.suppress(ValueError):  # shorter, relative paths when under the cwd
        ravel = ravel.relative_to(Path.cwd())
    with contextlib.suppress(ValueError):
        database = database.relative_to(Path.cwd())
    return f"{ravel} --database-url sqlite:///{database} runs history {run_id}"


def _settings_for(database: str | None) -> None:
    """Point this process at a database (None: the embedded default under HOME)."""
    from pipeline import store
    from pipeline.settings import reload_settings

    os.environ["RAVEL_HOME"] = str(HOME)
    os.environ.pop("RAVEL_BROKER_URL", None)
    if database:
        os.environ["RAVEL_DATABASE_URL"] = database
    else:
        os.environ.pop("RAVEL_DATABASE_URL", None)
    reload_settings()
    store.reset_db()


def _wait(predicate: Callable[[], bool], timeout: float, poll: Callable[[], None]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll()
        if predicate():
            poll()
            return True
        time.sleep(0.2)
    return False


def reference_run(scripted: bool) -> int | None:
    """Run the story uninterrupted, in-process, on its own database; return tokens billed."""
    if not scripted:
        return None
    from examples.procurement import agent
    from examples.procurement.stubs import LocalWorld
    from pipeline import approve, get_run, start_run
    from pipeline.migrate import upgrade
    from pipeline.testing import ScriptedLLMServer
    from pipeline.testing.inline import inline_dispatch

    url = f"sqlite:///{HOME / 'reference.db'}"
    world, llm = LocalWorld().start(), ScriptedLLMServer(_script()).start()
    os.environ.update(
        PROCUREMENT_API=world.url, OPENAI_BASE_URL=llm.base_url, OPENAI_API_KEY="scripted"
    )
    _settings_for(url)
    upgrade(url)
    try:
        with inline_dispatch() as inline:
            run_id = start_run("procurement", REQUEST)
            inline.drain()
            approve(run_id, agent.FINANCE_DIRECTOR)
            inline.drain()
        if get_run(run_id).status != "succeeded":
            raise SystemExit(f"the reference run did not succeed: {get_run(run_id).error}")
        return int(llm.stats(run_id)["total_tokens"])
    finally:
        llm.stop()
        world.stop()


def _script() -> dict[str, Any]:
    import json

    loaded: dict[str, Any] = json.loads(SCRIPT.read_text())
    return loaded


def main() -> int:
    exported = _own_environment()
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    scripted = not (os.environ.get("OPENAI_API_KEY") and not os.environ.get("OPENAI_BASE_URL"))
    real_key = None if scripted else os.environ["OPENAI_API_KEY"]

    from examples.procurement.report import Check, Follower, console, print_proof, timeline

    console.rule("[bold]Ravel: the procurement agent that never forgets")
    console.print("Reference: the same story, uninterrupted, in-process ...")
    reference_tokens = reference_run(scripted)
    if reference_tokens is not None:
        console.print(f"  an uninterrupted run is billed [bold]{reference_tokens}[/bold] tokens\n")

    from examples.procurement import agent
    from examples.procurement.stubs import LocalWorld
    from pipeline import approve, get_run, start_run, verify_audit
    from pipeline.migrate import upgrade
    from pipeline.testing import ScriptedLLMServer
    from pipeline.testing.cluster import Cluster

    _settings_for(None)
    upgrade()
    world = LocalWorld().start()
    llm = ScriptedLLMServer(_script()).start() if scripted else None
    env = {
        "RAVEL_HOME": str(HOME),
        "RAVEL_WORKFLOWS": "examples.procurement.agent",
        "PROCUREMENT_API": world.url,
        # Short leases so the demo recovers in seconds (production default: 15 s).
        "RAVEL_LEASE_SECONDS": "3",
        "RAVEL_REAPER_INTERVAL": "0.5",
        "RAVEL_REDISPATCH_AFTER": "2",
        "RAVEL_FAULTS": "after_vendor_accepted=kill",
        "RAVEL_FAULTS_ONCE_DIR": str(HOME / "faults"),
    }
    if llm is not None:
        env.update(OPENAI_BASE_URL=llm.base_url, OPENAI_API_KEY="scripted")
    elif real_key:
        env.update(OPENAI_API_KEY=real_key, RAVEL_MODEL=exported.get("RAVEL_MODEL", ""))
    cluster = Cluster(env, HOME)
    try:
        console.print("Starting a worker (celery -A tasks worker -B, SQLite + filesystem broker)")
        cluster.worker(beat=True)
        run_id = start_run("procurement", REQUEST, actor="dana@design")
        console.print(f"Run [bold]{run_id}[/bold] started: {REQUEST['message']!r}")
        follow = Follower(run_id)
        if not _wait(lambda: get_run(run_id).status == "waiting", 90, follow.poll):
            raise SystemExit(f"the run did not park: {get_run(run_id)}\n{cluster.logs_tail()}")
        slack = [m for m in world.world.slack if m.get("channel") == "#finance-approvals"]
        if slack:
            console.print(f"\n  [bold]Slack #finance-approvals[/bold]: {slack[-1]['text']}")
            console.print("  " + slack[-1]["blocks"][0]["text"]["text"].replace("\n", "\n  "))

        console.print("\n[bold]Three days pass. The server restarts:[/bold] every worker stops.")
        cluster.stop_all()
        parked = get_run(run_id)
        console.print(
            f"  run is [bold]{parked.status}[/bold]; processes running for it: "
            f"{sum(p.alive() for p in cluster.procs)}"
        )
        console.print("A new worker starts; the finance director clicks Approve.")
        cluster.worker(beat=True)
        approve(run_id, agent.FINANCE_DIRECTOR, {"comment": "Approved for Q4 budget"})

        fired = HOME / "faults" / "after_vendor_accepted"
        if _wait(fired.exists, 60, follow.poll):
            console.print(
                "\n  [bold red]SIGKILL[/bold red]: the worker died right after the "
                "vendor accepted the PO, before Ravel recorded it."
            )
            cluster.stop_all()
            console.print("  The whole worker is gone; a new one starts.\n")
            cluster.worker(beat=True)
        if not _wait(lambda: get_run(run_id).status in ("succeeded", "failed"), 120, follow.poll):
            raise SystemExit(f"the run did not finish\n{cluster.logs_tail()}")

        done = get_run(run_id)
        console.rule("Timeline")
        timeline(run_id)
        console.print(f"\nAnswer: {done.result.get('answer') if done.result else done.error}")
        console.print(f"Tokens: {done.tokens}, cost: ${done.cost_usd:.6f}")
        console.rule("Proof")
        orders = world.world.orders
        audit = verify_audit(run_id)
        checks = [
            Check("the run succeeded", done.status == "succeeded", str(done.status)),
            Check(
                "the worker was killed mid-run and the run survived it",
                fired.exists(),
                "SIGKILL after the vendor accepted the PO" if fired.exists() else "no kill",
            ),
            Check(
                "exactly one PO at the vendor",
                len(orders) == 1,
                f"{len(orders)} order(s) from {world.world.order_posts} POST(s) with the "
                "same Idempotency-Key",
            ),
            Check(
                "the ERP was updated once",
                len(world.world.erp) == 1,
                f"{len(world.world.erp)} PO record(s)",
            ),
            Check("the audit chain verifies", audit.ok, f"{audit.events} events"),
        ]
        if llm is not None and reference_tokens is not None:
            billed = int(llm.stats(run_id)["total_tokens"])
            checks.append(
                Check(
                    "tokens billed equal an uninterrupted run",
                    billed == reference_tokens == done.tokens,
                    f"billed {billed}, journaled {done.tokens}, uninterrupted {reference_tokens}",
                )
            )
        ok = print_proof(checks)
        # One line whatever the terminal's width, so that it can be copied.
        console.print(f"\nAudit it any time: [bold]{_audit_command(run_id)}[/bold]", soft_wrap=True)
        return 0 if ok else 1
    finally:
        cluster.stop_all()
        if llm is not None:
            llm.stop()
        world.stop()


if __name__ == "__main__":
    sys.exit(main())
