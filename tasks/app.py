"""Ravel's own Celery app (``celery -A tasks``): the settings of its design, and Ravel
installed on it exactly as on a host project's app (:func:`tasks.host.install`)."""

from __future__ import annotations

from celery import Celery

from pipeline.errors import ConfigurationError
from pipeline.settings import get_settings
from tasks.config import celery_config
from tasks.host import install, refuse_or_raise


def create_app() -> Celery:
    """The Celery app serving every workflow of ``RAVEL_WORKFLOWS``."""
    celery = Celery("ravel")
    celery.conf.update(celery_config(get_settings()))
    # Loaded now, not when a worker starts: ``tasks.app`` has its step tasks on import.
    return install(celery, load_now=True)


def _create_or_refuse() -> Celery:
    try:
        return create_app()
    except ConfigurationError as exc:
        refuse_or_raise(exc)


app = _create_or_refuse()
