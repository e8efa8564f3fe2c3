"""The Python client's concurrency_key= against a real server (the fixtures of tests/client)."""

from __future__ import annotations

from tests.client.conftest import _space_pool, client, creds, server  # noqa: F401 - fixtures


def test_create_takes_a_concurrency_key_and_the_limit_holds_per_key(client, creds):  # noqa: F811
    a1 = client.create("kl.sync", {"n": 1}, concurrency_key="customer-a")
    client.create("kl.sync", {"n": 2}, concurrency_key="customer-a")
    b1 = client.create_many([{"name": "kl.sync", "concurrency_key": "customer-b"}])[0]
    assert client.get(a1["id"])["concurrencyKey"] == "customer-a"
    creds.server.manage("space_settings", "--space", creds.id, "--key-limit", "kl.sync:1")

    polled = client.poll(count=10)

    assert sorted(job["id"] for job in polled) == sorted([a1["id"], b1["id"]])
    assert client.poll(count=10) == []
