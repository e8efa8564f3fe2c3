"""The client's workflows against a real server: create(..., depends_on=), positions in
create_many, and a worker's job.parents."""

from __future__ import annotations

from jobyard import Worker
from tests import threads


def test_a_child_waits_for_its_parent_and_reads_its_result(client):
    parent = client.create("wf.extract", {"n": 20})
    child = client.create("wf.load", depends_on=[parent["id"]], on_parent_failure="run")
    assert (parent["status"], child["status"]) == ("pending", "blocked")
    seen: dict = {}

    def handle(job):
        if job.name == "wf.extract":
            return job.payload["n"] + 1
        seen["parents"] = job.parents
        return sum(p["result"] for p in job.parents)

    worker = Worker(handle, client=client, wait_seconds=1)
    thread = threads.spawn(worker.run, install_signal_handlers=False)
    try:
        final = client.wait(child["id"], timeout=60, use_stream=False, poll_interval=0.2)
    finally:
        worker.stop()
        thread.join(30)
    thread.result(0)

    assert (final["status"], final["result"]) == ("completed", 21)
    assert seen["parents"] == [
        {"id": parent["id"], "name": "wf.extract", "status": "completed", "result": 21}
    ]


def test_create_many_links_jobs_by_position(client):
    created = client.create_many(
        [{"name": "wf.a"}, {"name": "wf.b", "depends_on": [0]}, {"name": "wf.c", "dependsOn": [1]}]
    )

    assert [job["status"] for job in created] == ["pending", "blocked", "blocked"]
