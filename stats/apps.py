from __future__ import annotations

from django.apps import AppConfig


class StatsConfig(AppConfig):
    name = "stats"

    def ready(self) -> None:
        # Engagement conditions join the segment registry once every model is loaded.
        from stats import segments

        segments.register_all()
