"""Ravel in a Django project: run status and approval pages, the operator's dashboard
(under ``ui/``, see :mod:`pipeline.contrib.django.dashboard`) and JSON routes, for the
signed-in user and their Django groups.

Add the app and its URLs::

    INSTALLED_APPS = [..., "django.contrib.auth", "pipeline.contrib.django"]
    RAVEL = {"APPROVE_PERMISSION": None}           # optional, see pipeline.contrib.django.conf

    urlpatterns = [..., path("ravel/", include("pipeline.contrib.django.urls"))]

The person who decides is ``request.user`` (its username is the actor in the run's history)
and the groups matched against a wait's ``group:...`` approvers are the user's Django groups.
Decisions are POSTs protected by Django's CSRF middleware (the dashboard's forms by its own
CSRF token); a GET never decides anything.
"""
