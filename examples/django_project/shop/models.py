"""An order, and where its refund stands (the refund itself is a Ravel run)."""

from django.conf import settings
from django.db import models


class Order(models.Model):
    """A customer's order. ``refund_run_id`` points at the refund's Ravel run, if any."""

    PAID = "paid"
    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"
    REFUND_REFUSED = "refund_refused"
    STATUSES = [
        (PAID, "paid"),
        (REFUND_REQUESTED, "refund requested"),
        (REFUNDED, "refunded"),
        (REFUND_REFUSED, "refund refused"),
    ]

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=20, choices=STATUSES, default=PAID)
    receipt_sent_at = models.DateTimeField(null=True, blank=True)
    refund_run_id = models.CharField(max_length=36, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"order #{self.pk} ({self.amount})"
