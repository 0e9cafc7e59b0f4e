"""The project's one Celery app: the shop's own tasks and Ravel's steps.

``celery -A proj worker -B`` (from this folder) runs both: ``shop.send_receipt`` and every
step of the workflows in ``RAVEL_WORKFLOWS`` (``shop.flows``), with Ravel's reaper in beat.
"""

import os

from celery import Celery

import tasks  # Ravel's Celery package (a top-level name: keep your own tasks in shop.tasks)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

app = Celery("proj")
# CELERY_* settings of proj/settings.py: the broker (RAVEL_BROKER_URL), JSON, prefetch 1.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Ravel's steps, reaper and signals on this app; its workflows load when a worker starts.
tasks.install(app)
