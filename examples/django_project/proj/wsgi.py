"""WSGI entry point: ``python -m waitress --listen 127.0.0.1:8000 proj.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
application = get_wsgi_application()
