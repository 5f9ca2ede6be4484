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
