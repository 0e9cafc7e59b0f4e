"""The example shop's Django project. Importing it loads the Celery app (Django's recipe), so
``start_run`` in the web process publishes through it."""

from .celery import app as celery_app

__all__ = ["celery_app"]
