from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from mailpanel.models import User


@pytest.mark.django_db
def test_first_run_creates_an_operator_and_prints_the_password_once() -> None:
    first, second = StringIO(), StringIO()
    call_command("ensure_operator", stdout=first)
    password = first.getvalue().split("password:")[1].split()[0]
    operator = User.objects.get(username="admin")
    assert operator.is_staff and operator.is_superuser
    assert operator.check_password(password)

    call_command("ensure_operator", stdout=second)
    assert second.getvalue() == ""
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_a_deactivated_admin_does_not_stop_a_new_operator_being_created() -> None:
    User.objects.create_user(username="admin", is_staff=True, is_active=False)
    out = StringIO()
    call_command("ensure_operator", stdout=out)
    assert "user name: admin2" in out.getvalue()
    operator = User.objects.get(username="admin2")
    assert operator.is_staff and operator.is_active
    assert not User.objects.get(username="admin").is_active
