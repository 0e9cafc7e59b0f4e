"""Shared test helpers (no fakes of the database or broker: these drive the real engine)."""
