"""The Celery app: ``celery -A tasks worker``, ``celery -A tasks beat``, ``celery -A tasks flower``.

Importing it loads the workflow modules named by ``RAVEL_WORKFLOWS`` and registers one task
per step, named ``<workflow>.<step>``.
"""

from tasks.app import app

__all__ = ["app"]
