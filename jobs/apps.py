from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    # Its receivers and maintenance steps are wired in config/apps.py.
