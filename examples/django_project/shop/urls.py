"""The shop's pages."""

from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.home, name="home"),
    path("orders/", views.place_order, name="place_order"),
    path("orders/<int:order_id>/", views.order_page, name="order"),
    path("orders/<int:order_id>/refund/", views.request_refund, name="request_refund"),
]
