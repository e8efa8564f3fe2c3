"""The job list: a bare array with a Link header, or an older server's object."""

from __future__ import annotations


def _job(n: int) -> dict:
    return {"id": f"j{n}", "status": "dead", "name": "email.send"}


def test_a_page_is_read_from_the_array_and_its_link_header(httpserver, client):
    httpserver.expect_request("/api/v1/spaces/space1/jobs").respond_with_json(
        [_job(1), _job(2)],
        headers={"Link": '</api/v1/spaces/space1/jobs?cursor=abc&limit=2>; rel="next"'},
    )

    page = client.list(status=["dead", "killed"], limit=2)

    assert [job["id"] for job in page["jobs"]] == ["j1", "j2"]
    assert page["nextCursor"] == "abc"
    assert page["next"].endswith("/api/v1/spaces/space1/jobs?cursor=abc&limit=2")
    request, _ = httpserver.log[0]
    assert request.args["status"] == "dead,killed" and request.args["limit"] == "2"


def test_iter_jobs_follows_the_link_until_there_is_none(httpserver, client):
    httpserver.expect_ordered_request("/api/v1/spaces/space1/jobs").respond_with_json(
        [_job(1), _job(2)],
        # another host name for the same server (a proxy): the client stays on its own
        headers={
            "Link": '<http://jobs.example.com/api/v1/spaces/space1/jobs?cursor=c2>; rel="next"'
        },
    )
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", query_string="cursor=c2"
    ).respond_with_json([_job(3)])

    assert [job["id"] for job in client.iter_jobs(page_size=2)] == ["j1", "j2", "j3"]
    assert len(httpserver.log) == 2


def test_the_old_object_shape_with_next_cursor_still_pages(httpserver, client):
    httpserver.expect_ordered_request("/api/v1/spaces/space1/jobs").respond_with_json(
        {"jobs": [_job(1), _job(2)], "nextCursor": "c2"}
    )
    httpserver.expect_ordered_request("/api/v1/spaces/space1/jobs").respond_with_json(
        {"jobs": [_job(3)], "nextCursor": None}
    )

    assert client.list(limit=2)["nextCursor"] == "c2"
    httpserver.clear_log()


def test_iter_jobs_on_an_old_server_sends_the_cursor(httpserver, client):
    httpserver.expect_ordered_request("/api/v1/spaces/space1/jobs").respond_with_json(
        {"jobs": [_job(1), _job(2)], "nextCursor": "c2"}
    )
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", query_string="limit=2&cursor=c2"
    ).respond_with_json({"jobs": [_job(3)], "nextCursor": None})

    assert [job["id"] for job in client.iter_jobs(page_size=2)] == ["j1", "j2", "j3"]


def test_a_server_without_cursors_is_paged_by_offset(httpserver, client):
    httpserver.expect_ordered_request("/api/v1/spaces/space1/jobs").respond_with_json(
        [_job(1), _job(2)]
    )
    httpserver.expect_ordered_request(
        "/api/v1/spaces/space1/jobs", query_string="limit=2&offset=2"
    ).respond_with_json([_job(3)])

    assert [job["id"] for job in client.iter_jobs(page_size=2)] == ["j1", "j2", "j3"]
