"""In-process step execution for tests (see :mod:`pipeline.testing.inline`)."""

from pipeline.testing.inline import InlineDispatcher, inline_dispatch

__all__ = ["InlineDispatcher", "inline_dispatch"]
