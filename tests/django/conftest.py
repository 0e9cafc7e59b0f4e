"""Django for the tests of ``pipeline.contrib.django`` only.

Django is configured here, when pytest collects this folder, never for the rest of the
suite (no DJANGO_SETTINGS_MODULE, no ``--ds``): pytest-django's fixtures (``client``,
``django_db``) then work in these tests and stay inert elsewhere. Users and groups live in
Django's own (in-memory SQLite) test database; runs in Ravel's, from the ``sqlite_db`` /
``pg_db`` fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="ravel-tests-only",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "pipeline.contrib.django",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF="tests.django.urls",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
            }
        ],
        LOGIN_URL="/login/",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
        RAVEL={},
    )
    django.setup()


@pytest.fixture
def people(db: Any) -> Iterator[dict[str, Any]]:
    """alice (group finance), bob (no group), olga (staff: operator)."""
    from django.contrib.auth.models import Group, User

    finance = Group.objects.create(name="finance")
    alice = User.objects.create_user("alice", password="pw")
    alice.groups.add(finance)
    yield {
        "alice": alice,
        "bob": User.objects.create_user("bob", password="pw"),
        "olga": User.objects.create_user("olga", password="pw", is_staff=True),
    }
