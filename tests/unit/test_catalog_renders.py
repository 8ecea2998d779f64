"""Every unit of every course renders into objects that meet the component rules.

These checks stand in for what the fake kubelet of the test cluster cannot see: a pod that would
be refused or crash on a real node because of its security context or missing resources.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from functools import cache
from typing import Any

import pytest

from labenv import quantity
from labenv.api import SessionSpec
from labenv.catalog.loader import default_catalog
from labenv.catalog.model import SupportMode
from labenv.components import credentials
from labenv.components.model import PodSecurityLevel
from labenv.reconcile import session
from labenv.reconcile.session import DesiredState

CATALOG = default_catalog()
UNITS = [
    (c.slug, u.id)
    for c in CATALOG.courses.values()
    for u in c.units
    if u.support.mode != SupportMode.UNSUPPORTED
]


@cache
def render(course: str, unit: str) -> DesiredState:
    catalog = CATALOG
    spec = SessionSpec(learner="ada", course=course, unit=unit)
    resolved = session.resolve(catalog, spec)
    ctx = session.context(f"ada-{unit}", "labenv", spec, "ghcr.io/labenv/workspace:0.1.0")
    generated = credentials.missing(resolved.components, {})
    return session.desired(catalog, resolved, ctx, "uid-1", generated)


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj["kind"] == "Pod":
        yield spec
    template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get("template")
    if template:
        yield template["spec"]


@pytest.mark.parametrize(("course", "unit"), UNITS, ids=[f"{c}/{u}" for c, u in UNITS])
def test_unit_renders_secure_pods(course: str, unit: str) -> None:
    state = render(course, unit)
    for plan in state.components:
        restricted = plan.component.pod_security.level == PodSecurityLevel.RESTRICTED
        for obj in plan.objects:
            where = f"{plan.name}: {obj['kind']}/{obj['metadata']['name']}"
            assert obj["metadata"]["namespace"] == f"lab-ada-{unit}", where
            for pod in pod_specs(obj):
                assert pod.get("enableServiceLinks") is False, f"{where}: enableServiceLinks must be false"
                security = pod.get("securityContext") or {}
                if restricted:
                    assert security.get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
                    assert isinstance(security.get("runAsUser"), int), f"{where}: numeric runAsUser"
                    assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
                for container in pod.get("initContainers", []) + pod["containers"]:
                    cwhere = f"{where}: container {container['name']}"
                    assert ":" in container["image"].rsplit("/", 1)[-1], f"{cwhere}: image tag"
                    assert container["image"].split(":")[-1] != "latest", f"{cwhere}: :latest"
                    res = container.get("resources") or {}
                    assert res.get("requests"), f"{cwhere}: requests"
                    assert res.get("limits"), f"{cwhere}: limits"
                    if restricted:
                        sc = container.get("securityContext") or {}
                        assert sc.get("allowPrivilegeEscalation") is False, cwhere
                        assert sc.get("capabilities", {}).get("drop") == ["ALL"], cwhere


@pytest.mark.parametrize(("course", "unit"), UNITS, ids=[f"{c}/{u}" for c, u in UNITS])
def test_published_settings_name_declared_services(course: str, unit: str) -> None:
    state = render(course, unit)
    services = {o["metadata"]["name"] for p in state.components for o in p.objects if o["kind"] == "Service"}
    for plan in state.components:
        for endpoint in plan.component.endpoints:
            assert endpoint.service in services, f"{plan.name}: endpoint {endpoint.name} names no Service"
        readiness = {(o["kind"], o["metadata"]["name"]) for o in plan.objects}
        for rule in plan.component.readiness:
            assert (rule.kind, rule.name) in readiness, f"{plan.name}: readiness names missing {rule.kind}"


def pod_requests(pod: dict[str, Any], key: str, field: str) -> Decimal:
    """What the scheduler and quota count for one pod: the larger of all containers together and
    the largest init container."""

    def of(container: dict[str, Any]) -> Decimal:
        return quantity.parse((container.get("resources") or {}).get(key, {}).get(field, "0"))

    main = sum((of(c) for c in pod["containers"]), Decimal(0))
    return max([main, *(of(c) for c in pod.get("initContainers", []))])


COMPONENT_UNITS = {p.name: (c, u) for c, u in reversed(UNITS) for p in render(c, u).components}


@pytest.mark.parametrize("name", sorted(COMPONENT_UNITS))
def test_declared_resources_are_what_the_pods_request(name: str) -> None:
    """The quota is sized from component.yaml: it must match what the templates really ask for."""
    plan = next(p for p in render(*COMPONENT_UNITS[name]).components if p.name == name)
    declared = plan.component.resources
    for key, field, value in [
        ("requests", "cpu", declared.requests.cpu),
        ("requests", "memory", declared.requests.memory),
        ("limits", "cpu", declared.limits.cpu),
        ("limits", "memory", declared.limits.memory),
    ]:
        total = sum(
            (
                pod_requests(pod, key, field) * int((o.get("spec") or {}).get("replicas", 1) or 1)
                for o in plan.objects
                for pod in pod_specs(o)
            ),
            Decimal(0),
        )
        assert quantity.parse(value) >= total, f"{name}: {key}.{field} declares {value}, pods need {total}"
