"""The Celery app: ``celery -A tasks worker``, ``celery -A tasks beat``, ``celery -A tasks flower``.

``tasks.app`` (built on first access to ``tasks.app``) loads the workflow modules named by
``RAVEL_WORKFLOWS`` and registers one task per step, named ``<workflow>.<step>``. Importing
``tasks.config`` or ``tasks.dispatch`` does not build it: a web app that only publishes
wake-ups never loads the workflows.

A project with a Celery app of its own calls ``tasks.install(app)`` instead (see
:mod:`tasks.host`): one ``celery -A proj worker`` then serves its tasks and Ravel's steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    from tasks.host import install as install

    app: Celery


def __getattr__(name: str) -> Any:
    if name == "install":  # Ravel on a project's own Celery app (see tasks.host)
        from tasks.host import install

        return install
    # Celery's ``-A tasks`` looks up ``tasks.app``; building it on that access (PEP 562)
    # keeps the submodules importable on their own.
    if name == "app":
        from tasks.app import app

        # Importing the submodule bound ``tasks.app`` to it: bind the Celery app instead,
        # as ``from tasks.app import app`` in this file used to.
        globals()["app"] = app
        return app
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")


__all__ = ["app", "install"]
