from __future__ import annotations

from django.apps import AppConfig


class SendingConfig(AppConfig):
    name = "sending"

    def ready(self) -> None:
        from sending import signals  # noqa: F401  (connects the worker lifecycle hooks)
