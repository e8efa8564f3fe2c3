"""An endpoint that stops answering costs one deadline, not one per message: its breaker opens,
its notifications wait in the outbox, one probe tries again after the cool-down."""

from __future__ import annotations

import http.server
import threading
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from notifications import breaker, outbox
from notifications.models import EndpointBreaker, NotificationDelivery, PendingNotification
from tests import threads
from tests.factories import SpaceFactory

FAST = {"connect_timeout": 1, "read_timeout": 0.3, "total_timeout": 0.5, "max_attempts": 5}


class Receiver:
    """A local endpoint that either hangs (accepts, never answers) or answers 200."""

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.answered = 0
        self.released = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.hang.is_set():
                    receiver.released.wait(5)
                    return
                receiver.answered += 1
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A server thread that died would look like a hanging endpoint: close() checks it.
        self._serving = threads.spawn(self.server.serve_forever, close_db=False)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self._serving.result(5)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def fast_slack(settings):
    settings.NOTIFICATIONS_POLICIES = {"slack": FAST}


def slack_space(url: str):
    return SpaceFactory(slack_webhook_url=url, slack_events=["created"], push_url="")


def attempts(space) -> int:
    return NotificationDelivery.objects.filter(space=space).count()


def test_a_hanging_endpoint_costs_one_deadline_and_its_messages_wait(
    db, engine, receiver, fast_slack
):
    receiver.hang.set()
    space = slack_space(receiver.url)

    for _ in range(5):
        engine.create(space)

    # One attempt timed out; the four after it were put back without a request.
    assert attempts(space) == 1
    state = EndpointBreaker.objects.get(space=space)
    assert (state.channel, state.endpoint, state.failures) == (
        "slack",
        receiver.url.split("/")[2],
        1,
    )
    assert state.open_until > timezone.now()
    rows = PendingNotification.objects.filter(space=space)
    assert rows.count() == 5
    assert all(r.lease_until >= state.open_until for r in rows if r.token == "")
    # Postponed rows keep their attempt count: waiting is not a failure.
    assert sorted(r.attempt for r in rows) == [1, 1, 1, 1, 2]


def test_other_spaces_are_not_held_up(db, engine, receiver, fast_slack, httpserver):
    receiver.hang.set()
    slow = slack_space(receiver.url)
    httpserver.expect_request("/good").respond_with_data("ok")
    good = slack_space(httpserver.url_for("/good"))

    engine.create(slow)
    for _ in range(3):
        engine.create(slow)
        engine.create(good)

    assert attempts(slow) == 1
    assert NotificationDelivery.objects.filter(space=good, success=True).count() == 3
    assert not PendingNotification.objects.filter(space=good).exists()


def test_after_the_cool_down_one_probe_goes_and_a_success_sends_the_rest(
    db, engine, receiver, fast_slack
):
    receiver.hang.set()
    space = slack_space(receiver.url)
    for _ in range(3):
        engine.create(space)
    assert attempts(space) == 1

    # Still hanging after the cool-down: one probe, the breaker opens for longer (10 s).
    with time_machine.travel(timezone.now() + timedelta(seconds=8), tick=True):
        outbox.flush_outbox()
        assert attempts(space) == 2
        state = EndpointBreaker.objects.get(space=space)
        assert state.failures == 2
        assert state.open_until > timezone.now() + timedelta(seconds=8)

    receiver.hang.clear()
    with time_machine.travel(timezone.now() + timedelta(seconds=30), tick=True):
        outbox.flush_outbox()

    assert receiver.answered == 3
    assert not PendingNotification.objects.filter(space=space).exists()
    assert not EndpointBreaker.objects.filter(space=space).exists()


def test_an_http_error_answer_does_not_open_the_breaker(db, engine, fast_slack, httpserver):
    httpserver.expect_request("/flaky").respond_with_data("busy", status=503)
    space = slack_space(httpserver.url_for("/flaky"))

    engine.create(space)

    # 503 answers fast: every attempt is made (eager retries), none is postponed.
    assert attempts(space) == FAST["max_attempts"]
    assert not EndpointBreaker.objects.exists()


def test_only_one_delivery_probes_when_the_cool_down_ends(db):
    space = SpaceFactory()
    now = timezone.now()
    until = breaker.trip(space.pk, "slack", "hooks.example:8443", "timed out", now=now)
    assert until == now + timedelta(seconds=breaker.COOL_DOWN_BASE)

    assert breaker.admit(space.pk, "slack", "hooks.example:8443", now=now) == (until, True)
    after = until + timedelta(seconds=1)
    assert breaker.admit(space.pk, "slack", "hooks.example:8443", now=after) == (None, True)
    # The probe is out: the next one waits for its outcome.
    assert breaker.admit(space.pk, "slack", "hooks.example:8443", now=after)[0] > after
    # Another endpoint, channel or space is unaffected.
    assert breaker.admit(space.pk, "slack", "hooks.example", now=now) == (None, False)
    assert breaker.admit(space.pk, "callback", "hooks.example:8443", now=now) == (None, False)


def test_cool_downs_double_up_to_five_minutes():
    assert [breaker.cool_down(n) for n in (1, 2, 3, 7, 8, 30)] == [5, 10, 20, 300, 300, 300]


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("https://hooks.slack.com/services/T0/B0/secret", "hooks.slack.com"),
        ("http://127.0.0.1:8080/hook?token=x", "127.0.0.1:8080"),
        ("http://[::1]:9/x", "::1:9"),
        ("not a url", ""),
        ("http://host:99999/", ""),
    ],
)
def test_the_endpoint_key_never_holds_the_path_or_query(url, endpoint):
    assert breaker.endpoint_of(url) == endpoint


def test_endpoints_nobody_tried_for_a_week_are_forgotten(db):
    space = SpaceFactory()
    with time_machine.travel(timezone.now() - timedelta(days=8)):
        breaker.trip(space.pk, "slack", "old.example", "timed out")
    breaker.trip(space.pk, "slack", "recent.example", "timed out")
    with time_machine.travel(timezone.now() - timedelta(days=8)):
        breaker.trip(space.pk, "callback", "still-cooling.example", "timed out")
    EndpointBreaker.objects.filter(endpoint="still-cooling.example").update(
        open_until=timezone.now() + timedelta(minutes=5)
    )

    assert breaker.prune() == 1
    assert sorted(EndpointBreaker.objects.values_list("endpoint", flat=True)) == [
        "recent.example",
        "still-cooling.example",
    ]
