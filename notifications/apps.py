from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        # Registers the Celery tasks the outbox sends by name (outbox.DELIVER_TASK) in every
        # process, eager ones included. Receivers, hooks and maintenance steps are wired in
        # config/apps.py.
        from . import tasks  # noqa: F401
