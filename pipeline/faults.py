"""Named fault points, inert unless a test arms them through the environment.

``RAVEL_FAULTS="after_effect_call_before_commit=kill,before_commit=raise"`` arms points in a
process (actions: ``kill`` SIGKILLs the process, ``raise`` raises, ``sleep:N`` sleeps N s,
``exit`` hard-exits). A point may be narrowed to one step, ``point@step=kill``. With
``RAVEL_FAULTS_ONCE_DIR`` set, each armed point fires once across all processes (a marker
file claims it), so a restarted worker is not killed again.
"""

from __future__ import annotations

import os
import signal
import time
from functools import cache

POINTS = frozenset(
    {
        "after_claim",
        "after_effect_intent",
        "after_effect_call_before_record",
        "after_effect_call_before_commit",
        "after_llm_response_before_persist",
        "before_commit",
        "after_commit_before_publish",
    }
)


class InjectedFault(RuntimeError):
    """Raised by a fault point armed with ``raise``."""


@cache
def _armed() -> dict[str, str]:
    spec = os.environ.get("RAVEL_FAULTS", "")
    armed: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, action = item.partition("=")
        armed[point] = action or "kill"
    return armed


def _claim_once(key: str) -> bool:
    folder = os.environ.get("RAVEL_FAULTS_ONCE_DIR")
    if not folder:
        return True
    os.makedirs(folder, exist_ok=True)
    try:
        fd = os.open(os.path.join(folder, key.replace("/", "_")), os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def fault(point: str, step: str | None = None) -> None:
    """Fire the fault armed at ``point`` (for ``step``), if any; otherwise do nothing."""
    armed = _armed()
    if not armed:
        return
    action = armed.get(f"{point}@{step}") if step else None
    key = f"{point}@{step}"
    if action is None:
        action, key = armed.get(point), point
    if action is None or not _claim_once(key):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(70)
    elif action.startswith("sleep:"):
        time.sleep(float(action.split(":", 1)[1]))
    else:
        raise InjectedFault(f"fault injected at {point}")
