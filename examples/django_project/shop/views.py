"""The shop's pages: place an order (its receipt is a Celery task of the shop's own) and ask
for a refund (a Ravel run, started once the order's transaction has committed)."""

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from pipeline import start_run

from .models import Order
from .tasks import send_receipt


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The signed-in customer's orders, and a form to place one."""
    orders = Order.objects.filter(customer=request.user).order_by("-pk")
    return render(request, "shop/home.html", {"orders": orders})


@require_POST
@login_required
def place_order(request: HttpRequest) -> HttpResponse:
    """Record an order; its receipt is sent by the worker once the order is committed."""
    try:
        amount = Decimal(request.POST.get("amount", ""))
    except InvalidOperation:
        amount = Decimal(0)
    if not 0 < amount < 100_000:
        messages.error(request, "Enter an amount between 0 and 100000.")
        return redirect("shop:home")
    with transaction.atomic():
        order = Order.objects.create(customer=request.user, amount=amount)
        # Never publish before the commit: the worker could look for an order not yet there.
        transaction.on_commit(lambda: send_receipt.delay(order.pk))
    return redirect("shop:order", order.pk)


def start_refund(order_id: int) -> str:
    """Start the order's refund run (again: the same run) and remember its id."""
    order = Order.objects.select_related("customer").get(pk=order_id)
    run_id = start_run(
        "shop_refund",
        {
            "order_id": order.pk,
            "amount": str(order.amount),
            "customer": order.customer.get_username(),
        },
        # One refund run per order, however often this runs (a retried request, a crash
        # between start_run and the update below).
        idempotency_key=f"shop-order-{order.pk}-refund",
        actor=order.customer.get_username(),
    )
    Order.objects.filter(pk=order.pk).update(refund_run_id=run_id)
    return run_id


@require_POST
@login_required
def request_refund(request: HttpRequest, order_id: int) -> HttpResponse:
    """Ask for a refund: the order changes and the run starts together, or neither does."""
    with transaction.atomic():
        order = get_object_or_404(
            Order.objects.select_for_update(), pk=order_id, customer=request.user
        )
        if order.status not in (Order.PAID, Order.REFUND_REQUESTED) or order.refund_run_id:
            messages.error(request, "A refund was already requested for this order.")
            return redirect("shop:order", order.pk)
        order.status = Order.REFUND_REQUESTED
        order.save(update_fields=["status"])
        # Ravel's run starts only if this transaction commits: a rolled-back request starts
        # nothing. The run row committed by start_run is Ravel's outbox: if its wake-up is
        # lost, the reaper publishes it again.
        transaction.on_commit(lambda: start_refund(order.pk))
    messages.success(request, "Refund requested: finance will decide.")
    return redirect("shop:order", order.pk)


@require_GET
@login_required
def order_page(request: HttpRequest, order_id: int) -> HttpResponse:
    """One order of the signed-in customer, with a link to its refund run."""
    order = get_object_or_404(Order, pk=order_id, customer=request.user)
    return render(request, "shop/order.html", {"order": order})
