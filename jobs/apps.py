from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from . import events, streams

        # Numbering (seq, counts) and fan-out of every committed event.
        events.event_committed.connect(
            streams.on_events_committed, dispatch_uid="jobs.streams.on_events_committed"
        )
