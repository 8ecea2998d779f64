"""Which components a pass applies: dependencies first, and everything a ready dependency unblocks."""

from __future__ import annotations

from labenv.api import SessionSpec
from labenv.catalog.loader import default_catalog
from labenv.components import credentials
from labenv.controller.reconciler import components_to_apply
from labenv.reconcile import session
from labenv.reconcile.status import WorkloadState


def week21() -> tuple[session.DesiredState, session.ResolvedUnit]:
    catalog = default_catalog()
    spec = SessionSpec(learner="ada", course="infra-36w", unit="week21")
    resolved = session.resolve(catalog, spec)
    ctx = session.context("ada-week21", "labenv", spec, "img:1")
    return session.desired(
        catalog, resolved, ctx, "uid-1", credentials.missing(resolved.components, {})
    ), resolved


def workload(kind: str, name: str, component: str, ready: bool) -> WorkloadState:
    return WorkloadState(kind=kind, name=name, component=component, ready=ready, failed=False, message="")


KAFKA_READY = [
    workload("StatefulSet", "kafka", "kafka", True),
    workload("Job", "kafka-topics", "kafka", True),
]


def names(plans: list[session.ComponentPlan]) -> set[str]:
    return {p.name for p in plans}


def test_a_fresh_session_waits_for_kafka_before_the_schema_registry() -> None:
    desired, resolved = week21()
    assert names(components_to_apply(desired, resolved, set(), [], {}, 1, None)) == {"kafka", "workspace"}


def test_kafka_left_ready_by_a_pass_that_died_unblocks_the_schema_registry_at_once() -> None:
    desired, resolved = week21()
    chosen = components_to_apply(desired, resolved, set(), KAFKA_READY, {}, 1, None)
    assert names(chosen) == {"kafka", "workspace", "schema-registry"}


def test_a_kafka_that_is_not_ready_keeps_the_schema_registry_waiting() -> None:
    desired, resolved = week21()
    starting = [workload("StatefulSet", "kafka", "kafka", False)]
    assert "schema-registry" not in names(
        components_to_apply(desired, resolved, {"kafka"}, starting, {}, 1, None)
    )
