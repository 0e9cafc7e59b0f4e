"""``python manage.py demo_users``: the example's people (for trying it out, never in
production): alice in the group finance, bob a customer, olga staff."""

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    """Create (or reset) the example's users and the group finance."""

    help = "Create alice (group finance), bob (customer) and olga (staff); password = name"

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the users, each with their name as password."""
        finance, _ = Group.objects.get_or_create(name="finance")
        for name, staff in (("alice", False), ("bob", False), ("olga", True)):
            user, _ = User.objects.get_or_create(username=name)
            user.set_password(name)
            user.is_staff = staff
            user.save()
            if name == "alice":
                user.groups.add(finance)
        self.stdout.write("users: alice (group finance), bob, olga (staff); password = name")
