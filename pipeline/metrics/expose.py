"""The Prometheus exposition: the workers' metric files, this process's own, the database's.

``ravel metrics serve`` serves it on its own port; :func:`wsgi_app` mounts it on a web app
(Flask, Django, any WSGI server). Either must run on the host of the workers whose files it
adds up (one exporter per host); the database-derived metrics are the same from any host.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app, start_http_server
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from pipeline.metrics import multiproc
from pipeline.metrics.database import DatabaseCollector
from pipeline.metrics.record import local_registry, recorded_here


class RecordedCollector(Collector):
    """What workers recorded: the metric files of every worker folder (found anew at each
    scrape), plus what this process recorded in memory, added up by series."""

    def collect(self) -> Iterator[Metric]:
        """Merge the files (summed over processes and workers) and this process's values."""
        files = multiproc.metric_files()
        families = list(MultiProcessCollector.merge(files))  # type: ignore[no-untyped-call]
        if recorded_here() and not multiproc.in_multiprocess_mode():
            # In memory (an in-process engine: tests, scripts): not in any file.
            families += [_without_created(f) for f in local_registry().collect()]
        yield from _sum_by_series(families)


def _without_created(family: Metric) -> Metric:
    # Creation timestamps exist only in memory; they cannot be added to the files' series.
    family.samples = [s for s in family.samples if not s.name.endswith("_created")]
    return family


def _sum_by_series(families: Iterable[Metric]) -> Iterator[Metric]:
    """One family per name, a sample's value summed over families with the same series."""
    merged: dict[str, Metric] = {}
    for family in families:
        known = merged.get(family.name)
        if known is None:
            merged[family.name] = family
            continue
        index = {(s.name, tuple(sorted(s.labels.items()))): i for i, s in enumerate(known.samples)}
        for sample in family.samples:
            at = index.get((sample.name, tuple(sorted(sample.labels.items()))))
            if at is None:
                known.samples.append(sample)
            else:
                old = known.samples[at]
                known.samples[at] = old._replace(value=old.value + sample.value)
    yield from merged.values()


def build_registry(*, database: bool = True) -> CollectorRegistry:
    """A registry with everything Ravel exposes.

    Args:
        database: include the metrics read from the database at scrape time. An exporter
            per host may leave them to one of them (they are the same from every host).
    """
    registry = CollectorRegistry()
    registry.register(RecordedCollector())
    if database:
        registry.register(DatabaseCollector())
    return registry


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(*, database: bool = True) -> WsgiApp:
    """A WSGI app answering every request with the exposition (mount it at ``/metrics``)."""
    app: WsgiApp = make_wsgi_app(build_registry(database=database))
    return app


def serve(
    host: str, port: int, *, database: bool = True, ready: Callable[[int], None] | None = None
) -> None:
    """Serve the exposition on ``http://host:port/metrics`` until SIGTERM or SIGINT.

    Args:
        host: address to listen on.
        port: port to listen on (0: any free port, given to ``ready``).
        database: include the database-derived metrics.
        ready: called with the port once listening.
    """
    server, thread = start_http_server(port, addr=host, registry=build_registry(database=database))
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if ready is not None:
            ready(int(server.server_address[1]))
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
