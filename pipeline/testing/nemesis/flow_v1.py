"""Release 1 of the nemesis workload: the agent and ``nemesis_flow`` version 1."""

from pipeline.testing.nemesis.workload import buyer, define_flow

flow = define_flow(1)

__all__ = ["buyer", "flow"]
