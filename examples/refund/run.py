"""``python -m examples.refund.run``: start a refund, approve it as finance, print its history.

A worker must serve the workflow, with the same database and broker settings::

    ravel db upgrade
    RAVEL_WORKFLOWS=examples.refund.flow celery -A tasks worker -B --loglevel INFO

The script exits 0 when the run succeeded, 1 when it did not (or did not finish in time),
2 on a Ravel error (no worker registered the workflow, database not migrated, ...). Running
it again finds the same run (same idempotency key) and reports it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from examples.refund.systems import payments
from pipeline import PipelineError, RunView, approve, get_run, run_history, start_run

FINAL = ("succeeded", "failed", "cancelled")


def wait_for(run_id: str, *statuses: str, timeout: float = 60.0) -> RunView:
    """Poll the run until its status is one of ``statuses``.

    Raises:
        TimeoutError: it was not, after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while (run := get_run(run_id)).status not in statuses:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"run {run_id} is still {run.status} (step {run.step}) after {timeout:.0f} s; "
                "is a worker serving examples.refund.flow running with the same "
                "RAVEL_DATABASE_URL and RAVEL_BROKER_URL?"
            )
        time.sleep(0.2)
    return run


def refund(order_id: int, timeout: float) -> RunView:
    """The app's side of the story: start, approve as finance once parked, wait for the end."""
    run_id = start_run("refund", {"order_id": order_id}, idempotency_key=f"order-{order_id}-refund")
    print(f"run {run_id} started: refund of order {order_id}")
    # A worker runs `check`; an amount over 100 parks the run on finance's approval.
    run = wait_for(run_id, "waiting", *FINAL, timeout=timeout)
    if run.status == "waiting" and run.wait is not None:
        print(
            f"parked: {run.wait.prompt} (approvers: {', '.join(run.wait.approvers)}, "
            f"wait {run.wait.id})"
        )
        # Send the wait that was shown: a screen left open on a wait that was decided or
        # replaced meanwhile gets a refusal instead of deciding another one.
        approve(run_id, "finance", {"note": "ok"}, wait_id=run.wait.id)
        print("approved by finance")
    return wait_for(run_id, *FINAL, timeout=timeout)


def report(run: RunView, order_id: int) -> None:
    """Print the outcome, what the payment service saw, and the run's audit history."""
    print(f"run {run.id} {run.status}: {run.result if run.error is None else run.error}")
    made, requests = payments(order_id)
    print(
        f"payments for order {order_id}: {len(made)} ({requests} request(s) to the payment service)"
    )
    print("history:")
    for event in run_history(run.id):
        at = event.at.strftime("%H:%M:%S.%f")[:-3]
        print(f"  {event.idx:>3}  {at}  {event.kind:<20} {event.actor:<32} {event.step or '-'}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; see the module's docstring for the exit codes."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.refund.run",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "--order",
        type=int,
        default=42,
        help="order to refund: 42 (250.0, needs approval) or 7 (40.0)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each stage (default: 60)"
    )
    args = parser.parse_args(argv)
    try:
        run = refund(args.order, args.timeout)
        report(run, args.order)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if run.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
