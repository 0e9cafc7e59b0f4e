"""Real worker processes for the end-to-end tests (see :mod:`pipeline.testing.cluster`)."""

from pipeline.testing.cluster import Cluster, Proc, RedisServer, free_port, wait_for

__all__ = ["Cluster", "Proc", "RedisServer", "free_port", "wait_for"]
