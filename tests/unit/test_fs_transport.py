"""The embedded broker under concurrent producers and consumers in separate processes.

kombu's stock filesystem transport lets a consumer take a message file before its producer
has written it; a worker then dies on an empty message. Ravel's transport must deliver every
message whole, exactly once, with no consumer error.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from queue import Empty

from kombu import Connection

from pipeline.settings import Settings
from tasks.config import broker_transport_options, broker_url

PER_PRODUCER = 150


def _settings(home: Path) -> Settings:
    return Settings(home=home, database_url="sqlite://", broker_url="filesystem://", workflows=())


def _produce(home: str, producer: int) -> None:
    s = _settings(Path(home))
    with Connection(broker_url(s), transport_options=broker_transport_options(s)) as conn:
        queue = conn.SimpleQueue("stress")
        for i in range(PER_PRODUCER):
            queue.put({"id": f"{producer}-{i}", "pad": "x" * 2000})
        queue.close()


def _consume(home: str, out: mp.Queue, total: int) -> None:  # type: ignore[type-arg]
    s = _settings(Path(home))
    with Connection(broker_url(s), transport_options=broker_transport_options(s)) as conn:
        queue = conn.SimpleQueue("stress")
        idle = 0
        while idle < 20:
            try:
                message = queue.get(timeout=0.1)
            except Empty:
                idle += 1
                continue
            idle = 0
            out.put(message.payload["id"])
            message.ack()
        queue.close()


def test_every_message_arrives_whole_and_once(tmp_path: Path) -> None:
    assert broker_url(_settings(tmp_path)).startswith("ravelfs://")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    total = 3 * PER_PRODUCER
    consumers = [ctx.Process(target=_consume, args=(str(tmp_path), out, total)) for _ in range(2)]
    producers = [ctx.Process(target=_produce, args=(str(tmp_path), p)) for p in range(3)]
    for proc in (*consumers, *producers):
        proc.start()
    received = [out.get(timeout=60) for _ in range(total)]
    for proc in (*producers, *consumers):
        proc.join(timeout=60)
    assert all(proc.exitcode == 0 for proc in (*producers, *consumers))
    assert sorted(received) == sorted(f"{p}-{i}" for p in range(3) for i in range(PER_PRODUCER))
