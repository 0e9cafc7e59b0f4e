"""``path("ravel/", include("pipeline.contrib.django.urls"))``: pages, the dashboard and
JSON routes.

Pages (``ravel:run``, ``ravel:approval``, ``ravel:approvals``) end with a slash, as Django's
do; the operator's dashboard is under ``ui/`` (``ravel:dashboard``, see
:mod:`pipeline.contrib.django.dashboard`); the JSON routes under ``api/`` have the Flask
blueprint's paths (see the README's HTTP API), so a script speaks to both alike.
"""

from __future__ import annotations

from django.urls import path, re_path

from pipeline.contrib.django import api, dashboard, views

app_name = "ravel"

urlpatterns = [
    path("runs/<str:run_id>/", views.run_page, name="run"),
    path("runs/<str:run_id>/approval/", views.approval_page, name="approval"),
    path("approvals/", views.approvals_list, name="approvals"),
    re_path(r"^ui/(?P<rest>.*)\Z", dashboard.dashboard, name="dashboard"),
    path("api/runs", api.runs, name="api-runs"),
    path("api/runs/<str:run_id>", api.run, name="api-run"),
    path("api/runs/<str:run_id>/history", api.history, name="api-history"),
    path("api/approvals", api.approvals, name="api-approvals"),
    path("api/runs/<str:run_id>/approve", api.approve, name="api-approve"),
    path("api/runs/<str:run_id>/reject", api.reject, name="api-reject"),
    path("api/runs/<str:run_id>/retry", api.retry, name="api-retry"),
    path("api/runs/<str:run_id>/cancel", api.cancel, name="api-cancel"),
    path("api/runs/<str:run_id>/events/<str:name>", api.send_event, name="api-event"),
]
