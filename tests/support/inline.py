"""In-process step execution for tests (see :mod:`pipeline.inline`)."""

from pipeline.inline import InlineDispatcher, inline_dispatch

__all__ = ["InlineDispatcher", "inline_dispatch"]
