from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from . import events, scheduler, streams

        # Numbering (seq, counts) and fan-out of every committed event.
        events.event_committed.connect(
            streams.on_events_committed, dispatch_uid="jobs.streams.on_events_committed"
        )
        # Events whose numbering never ran (the process died right after the commit).
        scheduler.register_periodic(
            "jobs.sequence_stragglers", streams.sequence_stragglers, every=5.0
        )
