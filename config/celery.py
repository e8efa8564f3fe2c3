import logging
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

log = logging.getLogger(__name__)

app = Celery("jobyard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _survive_restore_on_lost_connection() -> None:
    """Keep the worker alive when Redis drops its connection.

    On a lost connection, kombu (5.7) closes the channel and, while closing, tries to hand
    the unacknowledged messages back to Redis through the connection that is already gone.
    That raises AttributeError ('NoneType' object has no attribute 'hostname'), which Celery
    treats as unrecoverable: the worker exits instead of reconnecting, and notifications
    stay in the outbox until someone restarts it (seen in bench/chaos.py, Redis outage).
    Skipping the hand-back loses nothing: Redis redelivers unacknowledged messages after the
    visibility timeout, and the notification outbox re-sends rows whose lease ran out.
    """
    try:
        from kombu.transport import redis as kombu_redis
    except ImportError:  # pragma: no cover - redis is a dependency
        return
    original = kombu_redis.QoS.restore_unacked_once
    if getattr(original, "_jobyard_safe", False):
        return

    def restore_unacked_once(self, stderr=None):
        try:
            return original(self, stderr)
        except Exception as exc:  # noqa: BLE001 - any failure here would stop the worker
            log.warning(
                "could not hand unacknowledged messages back to Redis while closing a lost "
                "connection; Redis redelivers them after the visibility timeout: %r",
                exc,
            )
            return None

    restore_unacked_once._jobyard_safe = True
    kombu_redis.QoS.restore_unacked_once = restore_unacked_once

    # The same closed connection reached another way: acking a message of a channel whose
    # connection is gone raised AttributeError ('NoneType' object has no attribute 'client'),
    # fatal too. As a connection error, kombu logs "Couldn't ack" and the worker carries on;
    # Redis redelivers the message, and a notification task that already ran does nothing.
    import redis

    original_connparams = kombu_redis.Channel._connparams

    def _connparams(self, asynchronous=False):
        if self.connection is None:
            raise redis.exceptions.ConnectionError("this channel's broker connection is closed")
        return original_connparams(self, asynchronous)

    kombu_redis.Channel._connparams = _connparams


_survive_restore_on_lost_connection()
