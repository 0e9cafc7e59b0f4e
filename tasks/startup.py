"""Start-up checks of workers and beat: refuse to run against a database they cannot use.

A worker against an unmigrated or unreachable database would otherwise log a long traceback
and then take wake-ups it cannot run. Instead it says in one line what is wrong and what to
do, and exits with code 1. An unreachable database is retried for ``RAVEL_DATABASE_WAIT``
seconds first, so containers started together (database, migrations, workers) come up in any
order.
"""

from __future__ import annotations

import logging
import time

from pipeline.errors import PipelineError, StoreUnavailable
from pipeline.redact import redact_text
from pipeline.settings import get_settings
from pipeline.store import health

log = logging.getLogger("ravel.startup")

_checked = False


def check_database(process: str) -> None:
    """Return if the database is reachable and migrated; else log one line and exit(1).

    An unreachable database is retried for ``RAVEL_DATABASE_WAIT`` seconds.

    Args:
        process: what is starting (``worker``, ``beat``), for the message.

    Raises:
        SystemExit: with code 1, when the database is not usable.
    """
    global _checked
    if _checked:  # the embedded beat of a worker that already checked
        return
    # Alembic logs "Context impl ..." at INFO when it reads the revision.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    wait = get_settings().database_wait
    deadline = time.monotonic() + wait
    retrying = False
    while True:
        try:
            state = health.schema_state()
            break
        except StoreUnavailable as exc:
            if time.monotonic() >= deadline:
                _refuse(process, f"{exc} (still unreachable after {wait:g} s)")
            if not retrying:
                log.warning("%s; retrying for up to %g s (RAVEL_DATABASE_WAIT)", exc, wait)
                retrying = True
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        except PipelineError as exc:
            _refuse(process, str(exc))
        except Exception as exc:  # a bad URL, a missing driver: still one line
            _refuse(process, f"cannot use the database: {type(exc).__name__}: {exc}")
    if state.problem:
        _refuse(process, state.problem)
    if state.newer:
        log.warning(
            "the database at %s is at revision %s, which this version of Ravel does "
            "not know (head %s): it was migrated by a newer version; upgrade this "
            "%s",
            state.url,
            state.current,
            state.head,
            process,
        )
    _checked = True


def _refuse(process: str, why: str) -> None:
    line = redact_text(" ".join(why.split()))
    log.critical("ravel %s cannot start: %s", process, line)
    raise SystemExit(1)
