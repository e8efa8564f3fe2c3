from __future__ import annotations

from django.urls import reverse

from jobs import services as job_services
from jobs.models import Job


def _url(cast):
    return reverse("dashboard-jobs-bulk", kwargs={"public_id": cast.space.public_id})


def _make(cast, n, name="a"):
    return [job_services.create_job(cast.space, {"name": name})[0] for _ in range(n)]


def test_kill_selected_asks_first_with_the_count(client, cast):
    jobs = _make(cast, 3)
    client.force_login(cast.bob)
    response = client.post(_url(cast), {"op": "kill:selected", "ids": [jobs[0].id, jobs[1].id]})
    assert response.status_code == 200
    assert response.context["count"] == 2
    assert Job.objects.filter(status="killed").count() == 0
    response = client.post(
        _url(cast), {"op": "kill:selected", "ids": [jobs[0].id, jobs[1].id], "confirm": "yes"}
    )
    assert response.status_code == 302
    assert set(Job.objects.filter(status="killed").values_list("id", flat=True)) == {
        jobs[0].id,
        jobs[1].id,
    }


def test_kill_all_matching_applies_the_filter(client, cast):
    _make(cast, 3, name="a")
    _make(cast, 2, name="b")
    theirs = job_services.create_job(cast.other_space, {"name": "a"})[0]
    client.force_login(cast.bob)
    response = client.post(_url(cast), {"op": "kill:matching", "name": "a"})
    assert response.context["count"] == 3
    client.post(_url(cast), {"op": "kill:matching", "name": "a", "confirm": "yes"})
    assert Job.objects.filter(space=cast.space, name="a", status="killed").count() == 3
    assert Job.objects.filter(space=cast.space, name="b", status="pending").count() == 2
    theirs.refresh_from_db()
    assert theirs.status == "pending"


def test_retry_all_matching_counts_only_dead_or_killed(client, cast):
    jobs = _make(cast, 4)
    job_services.bulk_kill(Job.objects.filter(pk__in=[jobs[0].pk, jobs[1].pk]))
    client.force_login(cast.bob)
    response = client.post(_url(cast), {"op": "retry:matching"})
    assert response.context["count"] == 2
    client.post(_url(cast), {"op": "retry:matching", "confirm": "yes"})
    assert Job.objects.filter(space=cast.space, status="pending").count() == 4


def test_selected_ids_of_another_space_are_ignored(client, cast):
    theirs = job_services.create_job(cast.other_space, {"name": "a"})[0]
    client.force_login(cast.bob)
    client.post(_url(cast), {"op": "kill:selected", "ids": [theirs.id], "confirm": "yes"})
    theirs.refresh_from_db()
    assert theirs.status == "pending"


def test_a_bad_bulk_request_is_a_message(client, cast):
    client.force_login(cast.bob)
    response = client.post(_url(cast), {"op": "explode:all"}, follow=True)
    assert response.status_code == 200
    assert "Choose an action" in response.content.decode()
    response = client.post(_url(cast), {"op": "kill:selected"}, follow=True)
    assert "Select some jobs first" in response.content.decode()


def test_the_confirmation_count_is_capped(client, cast, monkeypatch):
    from dashboard import views

    monkeypatch.setattr(views, "BULK_COUNT_CAP", 2)
    _make(cast, 3)
    client.force_login(cast.bob)
    response = client.post(_url(cast), {"op": "kill:matching"})
    assert response.context["count"] == 2
    assert response.context["count_capped"] is True
    assert "more than 2 jobs" in response.content.decode()
    client.post(_url(cast), {"op": "kill:matching", "confirm": "yes"})
    assert Job.objects.filter(space=cast.space, status="killed").count() == 3
