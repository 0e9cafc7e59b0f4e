"""``ravel metrics serve``: the Prometheus endpoint of the workers on this host."""

from __future__ import annotations

import click

from pipeline.cli.common import require_database


@click.group()
def metrics() -> None:
    """Prometheus metrics of runs, steps, the reaper and LLM calls."""


@metrics.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9808,
    show_default=True,
    help="Port to listen on (0: any free port, printed once listening).",
)
@click.option(
    "--no-database",
    "no_database",
    is_flag=True,
    help="Leave out the metrics read from the database (when another exporter "
    "already exposes them).",
)
def serve(host: str, port: int, no_database: bool) -> None:
    """Serve /metrics: the metric files of the workers on this host (RAVEL_METRICS_DIR) and
    the run counts read from the database at each scrape. Stops on SIGTERM or Ctrl-C."""
    if not no_database:
        require_database()
    # Imported here: only this command needs prometheus_client's HTTP server.
    from pipeline.metrics import expose

    def ready(bound: int) -> None:
        click.echo(f"serving Prometheus metrics on http://{host}:{bound}/metrics", err=True)

    expose.serve(host, port, database=not no_database, ready=ready)
