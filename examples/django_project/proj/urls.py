"""The shop's pages, Django's login, and Ravel's pages and dashboard under /ravel/."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("ravel/", include("pipeline.contrib.django.urls")),
    path("", include("shop.urls")),
]
