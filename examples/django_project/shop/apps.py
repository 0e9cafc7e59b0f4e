"""The shop app: orders, a receipt task of its own, and a refund workflow run by Ravel."""

from django.apps import AppConfig


class ShopConfig(AppConfig):
    """The example shop."""

    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"
