"""The Django app: ``INSTALLED_APPS = [..., "pipeline.contrib.django"]``."""

from __future__ import annotations

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

from pipeline.errors import ConfigurationError
from pipeline.settings import get_settings


class RavelConfig(AppConfig):
    """Checks the ``RAVEL`` settings block and Ravel's environment when Django starts."""

    name = "pipeline.contrib.django"
    label = "ravel"
    verbose_name = "Ravel"

    def ready(self) -> None:
        """Refuse to start with a bad ``RAVEL`` block or ``RAVEL_*`` setting, naming it."""
        from pipeline.contrib.django import conf

        conf.load()
        try:
            get_settings()  # e.g. an unsupported RAVEL_DATABASE_URL, said in one line
        except ConfigurationError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
