"""The shop's own Celery task, served by the same worker as Ravel's steps."""

from celery import shared_task
from django.utils import timezone

from .models import Order


@shared_task(name="shop.send_receipt")
def send_receipt(order_id: int) -> None:
    """Send the order's receipt (here: record when it was sent)."""
    Order.objects.filter(pk=order_id, receipt_sent_at__isnull=True).update(
        receipt_sent_at=timezone.now()
    )
