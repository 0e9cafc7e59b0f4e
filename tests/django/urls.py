"""URLs of the Django test project: Ravel's app under /ravel/, and a login page."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="ravel/problem.html"), name="login"),
    path("ravel/", include("pipeline.contrib.django.urls")),
]
