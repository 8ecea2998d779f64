"""Prometheus metrics of the operator, served on LABENV_METRICS_PORT (the chart's metrics Service)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

_DURATIONS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)

PROVISIONING = Histogram(
    "labenv_session_provisioning_seconds",
    "Time from a session's creation until it was first Ready.",
    ["course", "unit"],
    buckets=_DURATIONS,
)
COMPONENT_READY = Histogram(
    "labenv_component_ready_seconds",
    "Time from a session's creation until a component was first ready.",
    ["component"],
    buckets=_DURATIONS,
)
RECONCILE_ERRORS = Counter(
    "labenv_reconcile_errors_total", "Reconcile passes that failed, by reason.", ["reason"]
)
API_RETRIES = Counter(
    "labenv_api_retries_total", "Reconcile passes retried after a transient API error.", ["reason"]
)


class OperatorCollector(Collector):
    """Sessions by phase, course and unit, and the API requests made, read at scrape time."""

    def __init__(
        self,
        statuses: Callable[[], Iterable[Mapping[str, Any]]],
        requests: Callable[[], Mapping[tuple[str, str], int]],
    ) -> None:
        self._statuses = statuses
        self._requests = requests

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        requests = CounterMetricFamily(
            "labenv_api_requests",
            "Requests the operator's reconcilers sent to the API server, by verb and resource "
            "(Kopf's own watches and bookkeeping not included).",
            labels=["verb", "resource"],
        )
        for (verb, resource), count in sorted(self._requests().items()):
            requests.add_metric([verb, resource], count)
        yield requests
        family = GaugeMetricFamily(
            "labenv_sessions", "LabSessions by phase, course and unit.", labels=["phase", "course", "unit"]
        )
        tally = Tally(
            (s.get("phase", "Pending"), s.get("course", ""), s.get("unit", "")) for s in self._statuses()
        )
        for (phase, course, unit), count in sorted(tally.items()):
            family.add_metric([phase, course, unit], count)
        yield family


def serve(
    port: int,
    statuses: Callable[[], Iterable[Mapping[str, Any]]],
    requests: Callable[[], Mapping[tuple[str, str], int]],
) -> None:
    """Expose /metrics; port 0 turns metrics off (several operators in one test run)."""
    REGISTRY.register(OperatorCollector(statuses, requests))
    if port:
        start_http_server(port)
