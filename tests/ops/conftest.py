from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config import metrics


@pytest.fixture
def scrape(client, settings):
    """GET /metrics with a token and no caching; returns {(name, labels...): value}."""
    settings.METRICS_TOKEN = "scrape-token"
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.METRICS_CACHE_SECONDS = 0
    metrics.DATABASE_COLLECTOR.invalidate()

    def get() -> Samples:
        response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token")
        assert response.status_code == 200, response.content
        return Samples(response.content.decode())

    return get


class Samples:
    def __init__(self, text: str) -> None:
        self.text = text
        self.values: dict[tuple[str, frozenset], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.values[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def get(self, metric: str, /, **labels: str) -> float | None:
        return self.values.get((metric, frozenset(labels.items())))
