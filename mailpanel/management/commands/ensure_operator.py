from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Creates an operator (staff superuser) if there is none, and prints its password once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(is_staff=True, is_active=True).exists():
            return
        username = _free_username(User, username)
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        bar = "=" * 60
        self.stdout.write(
            f"{bar}\nCreated the operator account (shown only this once):\n"
            f"  user name: {username}\n  password:  {password}\n{bar}"
        )


def _free_username(User: Any, wanted: str) -> str:  # noqa: N803
    # The wanted name may belong to a user an operator deactivated or demoted: never reuse
    # (or fail on) that account, take the next free name instead.
    candidate, n = wanted, 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        candidate = f"{wanted}{n}"
    return candidate
