"""The Celery worker survives kombu failing to hand messages back on a lost Redis connection."""

from __future__ import annotations

from unittest import mock

import pytest
import redis
from kombu.transport import redis as kombu_redis

import config.celery  # noqa: F401 - installs the guard


def _qos_with_unacked_messages():
    qos = kombu_redis.QoS.__new__(kombu_redis.QoS)
    qos._on_collect = mock.Mock()
    qos._flush = mock.Mock()
    qos._delivered = {"tag-1": mock.Mock()}  # one message delivered, not acked
    qos.restore_at_shutdown = True
    qos.channel = mock.Mock(do_restore=True)
    return qos


def test_a_failed_hand_back_while_closing_is_logged_not_raised(caplog):
    qos = _qos_with_unacked_messages()
    gone = AttributeError("'NoneType' object has no attribute 'hostname'")
    with mock.patch.object(kombu_redis.QoS, "restore_unacked", side_effect=gone) as restore:
        # What Channel.close() calls; unguarded, the AttributeError stops the worker.
        assert qos.restore_unacked_once() is None
    assert restore.called
    assert "could not hand unacknowledged messages back" in caplog.text


def test_a_channel_whose_connection_is_gone_raises_a_connection_error():
    channel = kombu_redis.Channel.__new__(kombu_redis.Channel)
    channel.connection = None
    # A connection error is one kombu handles (ack_log_error logs it); AttributeError was fatal.
    with pytest.raises(redis.exceptions.ConnectionError):
        channel._connparams()
    assert redis.exceptions.ConnectionError in kombu_redis.Transport.connection_errors
