"""Real worker processes for the end-to-end tests (see :mod:`pipeline.cluster`)."""

from pipeline.cluster import Cluster, Proc, RedisServer, free_port, wait_for

__all__ = ["Cluster", "Proc", "RedisServer", "free_port", "wait_for"]
