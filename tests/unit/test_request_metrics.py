"""The operator's request counts, by verb and resource, as Prometheus shows them."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from labenv.controller.metrics import OperatorCollector
from labenv.kube.client import resource_of


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/api/v1/namespaces/lab-a/secrets/labenv-generated", "secrets"),
        ("/api/v1/namespaces/lab-a/secrets", "secrets"),
        ("/api/v1/namespaces/lab-a", "namespaces"),
        ("/api/v1/namespaces", "namespaces"),
        ("/api/v1/namespaces/lab-a/serviceaccounts/learner/token", "serviceaccounts/token"),
        ("/apis/labenv.io/v1alpha1/namespaces/labenv/labsessions/ada-week21/status", "labsessions/status"),
        ("/apis/apps/v1/namespaces/lab-a/statefulsets?labelSelector=x", "statefulsets"),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", "clusterroles"),
        ("/apis/apps/v1", "discovery"),
        ("/api/v1", "discovery"),
    ],
)
def test_a_request_path_is_counted_under_its_resource(path: str, resource: str) -> None:
    assert resource_of(path) == resource


def test_requests_are_exported_by_verb_and_resource() -> None:
    counts = Counter({("PATCH", "secrets"): 3, ("GET", "namespaces"): 2})
    registry = CollectorRegistry()
    registry.register(OperatorCollector(list, lambda: counts))
    text = generate_latest(registry).decode()
    assert 'labenv_api_requests_total{resource="secrets",verb="PATCH"} 3.0' in text
    assert 'labenv_api_requests_total{resource="namespaces",verb="GET"} 2.0' in text
