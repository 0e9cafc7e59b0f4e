"""The API under test: a Flask app with the blueprint, keys of every role, and workflows run
in-process by the inline dispatcher (the store is the real SQLite or PostgreSQL database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.testing.inline import InlineDispatcher
from pipeline.web import create_app
from pipeline.web import keys as api_keys
from tests.integration.web.support import KEYS, Api, Unchanged


@pytest.fixture
def api(any_db: str, tmp_path: Path, inline: InlineDispatcher) -> Iterator[Api]:
    """The API on a fresh database, with the keys of :data:`KEYS`."""
    path = tmp_path / "api-keys.toml"
    secrets = {}
    for name, (principal, role, groups) in KEYS.items():
        secrets[name], _ = api_keys.create(
            path, name, principal=principal, roles=[role], groups=groups
        )
    app = create_app(config={"RAVEL_API_KEYS_FILE": str(path)})
    yield Api(app, secrets, path)


@pytest.fixture
def unchanged() -> type[Unchanged]:
    return Unchanged
