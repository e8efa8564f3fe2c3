"""The live list asks which jobs just created belong on the page: the page's filter, search
included, over those ids only, within the space."""

from __future__ import annotations

from django.urls import reverse

from jobs.models import Job


def _rows(client, cast, **params):
    url = reverse("dashboard-space", kwargs={"public_id": cast.space.public_id})
    return client.get(url, {"fragment": "rows", **params})


def test_new_jobs_matching_the_search_are_rendered(client, cast):
    hit = Job.objects.create(space=cast.space, name="a", payload={"k": "needle"})
    miss = Job.objects.create(space=cast.space, name="b", payload={"k": "hay"})
    by_error = Job.objects.create(space=cast.space, name="c", last_error="needle broke")
    client.force_login(cast.bob)
    data = _rows(client, cast, q="needle", ids=f"{hit.id},{miss.id},{by_error.id}").json()
    assert data["ids"] == [by_error.id, hit.id]
    assert f'data-job-id="{hit.id}"' in data["rows"]
    assert miss.id not in data["rows"]


def test_the_status_and_name_filters_apply_too(client, cast):
    pending = Job.objects.create(space=cast.space, name="a")
    dead = Job.objects.create(space=cast.space, name="a", status="dead")
    other = Job.objects.create(space=cast.space, name="b")
    client.force_login(cast.bob)
    ids = ",".join(j.id for j in (pending, dead, other))
    assert _rows(client, cast, status="pending", name="a", ids=ids).json()["ids"] == [pending.id]


def test_rows_show_attempts_as_n_of_max_and_the_error_headline(client, cast):
    job = Job.objects.create(
        space=cast.space,
        name="a",
        attempt_number=2,
        max_retries=3,
        last_error='{"type": "KeyError", "message": "file", "traceback": "x\\ny"}',
    )
    client.force_login(cast.bob)
    rows = _rows(client, cast, ids=job.id).json()["rows"]
    assert ">2/4<" in rows
    assert ">KeyError: file<" in rows


def test_ids_of_other_spaces_and_junk_are_ignored(client, cast):
    theirs = Job.objects.create(space=cast.other_space, name="a")
    client.force_login(cast.bob)
    data = _rows(client, cast, ids=f"{theirs.id},junk,,'; DROP").json()
    assert data["ids"] == []
    assert "data-job-id" not in data["rows"]


def test_an_outsider_gets_404(client, cast):
    job = Job.objects.create(space=cast.space, name="a")
    client.force_login(cast.charlie)
    assert _rows(client, cast, ids=job.id).status_code == 404
