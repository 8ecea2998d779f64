"""Will a cohort fit? Its sessions' requests against the cluster's free allocatable capacity."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from labenv import api, names, quantity
from labenv.catalog.loader import Catalog
from labenv.components import credentials
from labenv.kube.client import Kube
from labenv.reconcile import session


@dataclass(frozen=True)
class Need:
    sessions: int
    cpu: Decimal  # per session
    memory: Decimal
    pods: int


@dataclass(frozen=True)
class Row:
    resource: str
    per_session: str
    needed: str
    available: str
    fits: bool


@dataclass(frozen=True)
class Report:
    rows: list[Row]

    @property
    def fits(self) -> bool:
        return all(r.fits for r in self.rows)


def _pod_templates(objects: Iterable[Mapping[str, Any]]) -> int:
    count = 0
    for obj in objects:
        spec = obj.get("spec") or {}
        if obj["kind"] in ("Deployment", "StatefulSet"):
            count += int(spec.get("replicas", 1) or 1)
        elif obj["kind"] == "Job":
            count += 1
    return count


def cohort_needs(catalog: Catalog, spec: api.CohortSpec) -> Need:
    """Requests of one session of the cohort's unit (as rendered), times learners plus warm pool."""
    session_spec = api.SessionSpec(learner="plan", course=spec.course, unit=spec.unit)
    resolved = session.resolve(catalog, session_spec)
    ctx = session.context("plan", names.DEFAULT_SESSION_NAMESPACE, session_spec, "plan:0")
    state = session.desired(catalog, resolved, ctx, "plan", credentials.missing(resolved.components, {}))
    return Need(
        sessions=len(spec.learners) + spec.warm_pool,
        cpu=sum((quantity.parse(c.resources.requests.cpu) for c in resolved.components), Decimal(0)),
        memory=sum((quantity.parse(c.resources.requests.memory) for c in resolved.components), Decimal(0)),
        pods=sum(_pod_templates(p.objects) for p in state.components),
    )


def _pod_requests(pod: Mapping[str, Any], resource: str) -> Decimal:
    spec = pod.get("spec") or {}

    def of(container: Mapping[str, Any]) -> Decimal:
        value = ((container.get("resources") or {}).get("requests") or {}).get(resource, "0")
        return quantity.parse(value)

    main = sum((of(c) for c in spec.get("containers", [])), Decimal(0))
    return max([main, *(of(c) for c in spec.get("initContainers", []))])


async def check(kube: Kube, need: Need) -> Report:
    nodes = [n for n in await kube.list("v1", "Node") if not (n.get("spec") or {}).get("unschedulable")]
    pods = [
        p
        for p in await kube.list("v1", "Pod")
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    rows = []
    for resource, per_session, fmt in (
        ("cpu", need.cpu, quantity.cpu),
        ("memory", need.memory, quantity.memory),
        ("pods", Decimal(need.pods), lambda v: str(int(v))),
    ):
        allocatable = sum(
            (
                quantity.parse((n.get("status") or {}).get("allocatable", {}).get(resource, "0"))
                for n in nodes
            ),
            Decimal(0),
        )
        used = (
            Decimal(len(pods))
            if resource == "pods"
            else sum((_pod_requests(p, resource) for p in pods), Decimal(0))
        )
        free, needed = max(Decimal(0), allocatable - used), per_session * need.sessions
        rows.append(Row(resource, fmt(per_session), fmt(needed), fmt(free), needed <= free))
    return Report(rows)
