from __future__ import annotations

from django.apps import AppConfig


class BouncesConfig(AppConfig):
    name = "bounces"

    def ready(self) -> None:
        # ESP tracking events arrive through anymail's signal (a framework hook, hence a signal).
        from anymail.signals import tracking

        from bounces import webhooks

        tracking.connect(webhooks.receive, dispatch_uid="bounces.webhooks.receive")
