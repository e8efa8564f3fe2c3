from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"

    def ready(self) -> None:
        from . import services

        services.register_with_scheduler()
