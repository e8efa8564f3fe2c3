"""The Python client's group= against a real server (the fixtures of tests/client)."""

from __future__ import annotations

import pytest

from tests.client.conftest import _space_pool, client, creds, server  # noqa: F401 - fixtures


def test_create_many_with_a_group_fires_its_completion_job_once(client):  # noqa: F811
    on_complete = {"name": "gc.mail", "payload": {"to": "ops"}, "max_retries": 0}
    answers = client.create_many(
        [{"name": "gc.thumb", "payload": {"i": i}} for i in range(3)],
        group={"name": "thumbs", "on_complete": on_complete},
    )
    group_id = answers[0]["groupId"]
    assert {a["groupId"] for a in answers} == {group_id}
    assert client.get_group(group_id)["total"] == 3

    for job in client.poll(count=3, names=["gc.thumb"]):
        client.complete(job["id"], {"ok": True}, claim_id=job["claimId"])

    group = client.get_group(group_id)
    assert (group["done"], group["completed"]) == (3, 3)
    (mail,) = client.poll(count=5, names=["gc.mail"])
    assert mail["id"] == group["completionJobId"]
    assert mail["payload"]["group"]["memberIds"] == sorted(a["id"] for a in answers)
    assert mail["payload"]["to"] == "ops"


def test_create_with_a_group_is_a_group_of_one(client):  # noqa: F811
    answer = client.create("gc.one", group={"name": "one", "onComplete": {"name": "gc.done"}})

    assert client.get(answer["id"])["groupId"] == answer["groupId"]
    assert client.get_group(answer["groupId"])["total"] == 1


def test_a_group_without_its_completion_job_is_refused_before_sending(client):  # noqa: F811
    with pytest.raises(TypeError, match="on_complete"):
        client.create("gc.x", group={"name": "g"})
