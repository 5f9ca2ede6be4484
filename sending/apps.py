from __future__ import annotations

from django.apps import AppConfig


class SendingConfig(AppConfig):
    name = "sending"

    def ready(self) -> None:
        from sending import checks, signals  # noqa: F401  (system checks, worker lifecycle hooks)
