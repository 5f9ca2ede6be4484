from __future__ import annotations

from django.apps import AppConfig


class MailpanelConfig(AppConfig):
    name = "mailpanel"
    verbose_name = "mailpanel"

    def ready(self) -> None:
        from mailpanel import checks  # noqa: F401  (registers the system checks)
