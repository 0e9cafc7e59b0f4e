"""Release 2 of the nemesis workload: ``nemesis_flow`` version 2 (load it beside
``flow_v1`` so that version 1's runs keep a worker while they drain)."""

from pipeline.testing.nemesis.workload import buyer, define_flow

flow = define_flow(2)

__all__ = ["buyer", "flow"]
