from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    # Its maintenance step (schedules.tick) is wired in config/apps.py.
