"""The RAVEL settings block: checked when Django starts, and the roles it gives users."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from pipeline.contrib.django.conf import Options, parse
from pipeline.contrib.django.identity import groups_of, role_of
from pipeline.web.keys import Role


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ([], "settings.RAVEL must be a dict, not list"),
        (
            {"APPROVERS": ["finance"]},
            "settings.RAVEL has unknown keys APPROVERS; the keys are: "
            "VIEW_PERMISSION, APPROVE_PERMISSION, OPERATE_PERMISSION, BASE_TEMPLATE",
        ),
        ({"APPROVE_PERMISSION": "approve"}, "must be None or a permission 'app_label.codename'"),
        ({"BASE_TEMPLATE": ""}, "settings.RAVEL['BASE_TEMPLATE'] must be a template name"),
    ],
)
def test_a_bad_block_is_refused_naming_the_problem(block: Any, message: str) -> None:
    with pytest.raises(
        ImproperlyConfigured,
        match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)"),
    ):
        parse(block)


def test_no_block_means_the_defaults() -> None:
    assert parse(None) == Options()
    assert parse({"BASE_TEMPLATE": "site/base.html"}).base_template == "site/base.html"


@pytest.mark.django_db
def test_roles_come_from_permissions_and_groups_from_django(people: dict[str, Any]) -> None:
    from django.contrib.auth.models import Permission

    alice, bob, olga = people["alice"], people["bob"], people["olga"]
    defaults = Options()
    assert [role_of(u, defaults) for u in (alice, bob, olga)] == [
        Role.APPROVER,
        Role.APPROVER,
        Role.OPERATOR,
    ]
    assert groups_of(alice) == ("finance",) and groups_of(bob) == ()

    strict = Options(approve_permission="auth.change_group", view_permission="auth.view_group")
    assert role_of(bob, strict) is None  # signed in, but no permission: no role
    bob.user_permissions.add(Permission.objects.get(codename="view_group"))
    bob = type(bob).objects.get(pk=bob.pk)  # permissions are cached per user object
    assert role_of(bob, strict) is Role.VIEWER
    bob.is_active = False
    assert role_of(bob, strict) is None
