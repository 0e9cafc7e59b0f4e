"""Settings of the example shop.

Django keeps its users, groups and orders in its own database (a SQLite file here); Ravel
keeps runs in RAVEL_DATABASE_URL. Both this web process and the Celery worker read Ravel's
settings from the environment: give them the same RAVEL_DATABASE_URL and RAVEL_BROKER_URL.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-set-DJANGO_SECRET_KEY")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "pipeline.contrib.django",  # Ravel: /ravel/runs/<id>/, .../approval/, the dashboard /ravel/ui/
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "proj.urls"
WSGI_APPLICATION = "proj.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DATABASE", str(BASE_DIR / "shop.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "shop:home"
LOGOUT_REDIRECT_URL = "login"
USE_TZ = True
TIME_ZONE = "UTC"

# Ravel's pages: who may see runs, decide approvals and operate (see pipeline.contrib.django
# .conf). Approvers are still named by each wait: here group:finance, a Django group.
RAVEL = {
    "VIEW_PERMISSION": None,  # every signed-in user may see a run's page
    "APPROVE_PERMISSION": None,  # every signed-in user may try; the wait says who may
    "OPERATE_PERMISSION": None,  # staff users may retry and cancel
    "BASE_TEMPLATE": "shop/base.html",
}

# Celery, read by proj/celery.py (namespace CELERY). Ravel checks the ones it needs.
CELERY_BROKER_URL = os.environ.get("RAVEL_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_ACCEPT_CONTENT = ["json"]  # Ravel: JSON only
CELERY_TASK_SERIALIZER = "json"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # Ravel: one message reserved at a time
CELERY_TASK_ACKS_LATE = True  # the shop's tasks too (Ravel's set it per task)
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("SHOP_QUEUE", "shop")
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
