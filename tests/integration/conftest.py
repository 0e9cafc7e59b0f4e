"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline import faults
from tests.support.agents import arm_faults


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """Arm fault points in this process: ``arm("after_llm_response_before_persist=raise")``."""
    yield lambda spec: arm_faults(monkeypatch, tmp_path / "once", spec)
    faults._armed.cache_clear()
