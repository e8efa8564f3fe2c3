"""The overview per job name: each figure from the rollup the scheduler keeps (time frozen)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from jobs import rollups, streams
from jobs.flow import set_limit
from jobs.models import NameRollup, NameState, RollupCursor

T0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def roll(space) -> None:
    """Number the space's events (as the sequencer does after commit) and roll them up."""
    streams.publish_space(space.pk)
    rollups.roll_up()


def by_name(space) -> dict[str, rollups.NameFigures]:
    return {f.name: f for f in rollups.overview(space)}


def test_each_figure_of_a_name_comes_from_its_events(api, space, create, poll, clock):
    # given: three jobs of "a", one of "b", the rollup seeded before them
    roll(space)
    for _ in range(3):
        create(name="a")
    create(name="b")
    clock.shift(3)
    taken = poll(count=2, names=["a"])  # waited 3 s each
    api.post(f"/api/v1/jobs/{taken[0]['id']}/ack")
    clock.shift(2)
    # when: one completes after running 2 s, the other fails for good
    assert api.post(f"/api/v1/jobs/{taken[0]['id']}/complete", {}, format="json").status_code == 200
    response = api.post(
        f"/api/v1/jobs/{taken[1]['id']}/fail", {"error": "boom", "retry": False}, format="json"
    )
    assert response.status_code == 200
    clock.shift(5)
    roll(space)
    # then
    a, b = by_name(space)["a"], by_name(space)["b"]
    assert (a.pending, a.delivered, a.running) == (1, 0, 0)
    assert (a.created, a.completed, a.failed, a.dead) == (3, 1, 1, 1)
    assert a.failure_rate == 0.5
    assert 1000 <= a.run_p50 <= 2500  # the 2 s run, in its bucket (1 s .. 2.5 s]
    assert 2500 <= a.wait_p95 <= 5000  # the 3 s waits, in theirs
    assert a.oldest_pending_seconds == 10.0  # created at T0, now T0 + 10 s
    assert (b.pending, b.created, b.completed) == (1, 1, 0)
    assert b.oldest_pending_seconds == 10.0


def test_the_hour_figures_leave_out_what_is_older_than_an_hour(api, space, create, poll, clock):
    roll(space)
    job_id = create(name="a")
    poll(count=1)
    api.post(f"/api/v1/jobs/{job_id}/complete", {}, format="json")
    roll(space)
    assert by_name(space)["a"].completed == 1
    clock.shift(59 * 60 + 59)  # still within the 60th minute
    assert by_name(space)["a"].completed == 1
    clock.shift(1)
    assert "a" not in by_name(space)  # nothing now and nothing in the last hour


def test_running_counts_and_the_limit_in_use(api, space, create, poll, clock):
    roll(space)
    for _ in range(3):
        create(name="a")
    set_limit(space, "a", concurrency=5, rate=None)
    poll(count=2, ack=True)
    roll(space)
    a = by_name(space)["a"]
    assert (a.pending, a.running, a.in_flight) == (1, 2, 2)
    assert (a.concurrency, a.limit_use) == (5, 0.4)


def test_a_first_rollup_seeds_the_counts_from_the_jobs(space, create, poll, clock):
    for _ in range(4):
        create(name="a")
    poll(count=1)
    streams.publish_space(space.pk)
    assert rollups.roll_up() == {"spaces": 1, "events": 0}  # seeded, nothing applied twice
    state = NameState.objects.get(space=space, name="a")
    assert (state.pending, state.delivered) == (3, 1)
    assert RollupCursor.objects.get(space=space).seq == 5
    # the next events move the seeded counts
    create(name="a")
    roll(space)
    assert NameState.objects.get(space=space, name="a").pending == 4


def test_events_are_applied_once_however_often_it_runs(space, create, clock):
    roll(space)
    create(name="a")
    roll(space)
    rollups.roll_up()
    rollups.roll_up_space(space.pk)
    assert NameRollup.objects.get(space=space, name="a").created == 1
    assert NameState.objects.get(space=space, name="a").pending == 1


def test_a_batch_limit_leaves_the_rest_for_the_next_step(space, create, clock):
    roll(space)
    for _ in range(3):
        create(name="a")
    streams.publish_space(space.pk)
    assert rollups.roll_up_space(space.pk, limit=2) == 2
    assert rollups.roll_up_space(space.pk, limit=2) == 1
    assert NameRollup.objects.get(space=space, name="a").created == 3


def test_percentiles_come_from_the_bucket_counts():
    hist = [0] * rollups.BUCKETS
    hist[rollups.bucket_of(5)] = 50  # (0, 10] ms
    hist[rollups.bucket_of(700)] = 50  # (500, 1000] ms
    assert rollups.percentile(hist, 0.5) == 10.0
    assert 500 < rollups.percentile(hist, 0.95) <= 1000
    assert rollups.percentile([0] * rollups.BUCKETS, 0.5) is None


def test_old_minute_rows_are_pruned(space, create, clock):
    roll(space)
    create(name="a")
    roll(space)
    clock.shift(rollups.KEEP - timedelta(minutes=1))
    assert rollups.prune()["names"] == 0
    clock.shift(timedelta(minutes=2))
    assert rollups.prune()["names"] == 1


def test_the_overview_reads_a_fixed_number_of_queries(
    space, create, clock, django_assert_max_num_queries
):
    roll(space)
    for name in ("a", "b", "c"):
        create(name=name)
    roll(space)
    # the rollup, the states, the limits, then one skip scan per name with pending jobs
    with django_assert_max_num_queries(3 + 3):
        assert len(rollups.overview(space)) == 3


def test_per_name_gauges_are_bounded_per_space(space, monkeypatch, clock):
    from prometheus_client import CollectorRegistry, generate_latest

    from config import metrics

    roll(space)
    monkeypatch.setattr(metrics, "METRICS_NAMES_PER_SPACE", 2)
    for name, n in (("big", 3), ("mid", 2), ("s1", 1), ("s2", 1)):
        for _ in range(n):
            create_job(space, name)
    roll(space)
    clock.shift(30)

    class Collector:
        def collect(self):
            yield from metrics.per_name_metrics(
                [(space.pk, space.public_id)], metrics.timezone.now()
            )

    registry = CollectorRegistry()
    registry.register(Collector())
    text = generate_latest(registry).decode()
    pending = {
        line.split('name="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("jobyard_name_pending{")
    }
    assert pending == {"big": 3.0, "mid": 2.0, "_other": 2.0}
    assert (
        f'jobyard_name_oldest_pending_age_seconds{{name="big",space="{space.public_id}"}} 30.0'
        in text
    )
    assert 'name="_other"' not in "".join(
        line for line in text.splitlines() if line.startswith("jobyard_name_oldest")
    )


def create_job(space, name):
    from jobs.services import create_job as create

    create(space, {"name": name})
