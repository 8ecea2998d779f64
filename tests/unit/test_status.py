"""Readiness is judged from workload status the way `kubectl rollout status` would."""

from __future__ import annotations

from typing import Any

from labenv.api import Condition, Phase
from labenv.catalog.loader import default_catalog
from labenv.reconcile import status
from labenv.reconcile.status import WorkloadState


def workload(kind: str, name: str, gen: int = 1, observed: int = 1, **st: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": name, "generation": gen, "labels": {"app.kubernetes.io/component": "postgres"}},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": observed, **st},
    }


def test_statefulset_is_ready_only_when_its_current_generation_is_ready() -> None:
    assert status.workload_state(workload("StatefulSet", "pg", readyReplicas=1, updatedReplicas=1)).ready
    assert not status.workload_state(workload("StatefulSet", "pg", readyReplicas=0, updatedReplicas=1)).ready
    stale = workload("StatefulSet", "pg", gen=2, observed=1, readyReplicas=1, updatedReplicas=1)
    assert not status.workload_state(stale).ready


def test_job_completion_and_failure() -> None:
    done = workload("Job", "init", conditions=[{"type": "Complete", "status": "True"}])
    failed = workload(
        "Job", "init", conditions=[{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]
    )
    assert status.workload_state(done).ready
    state = status.workload_state(failed)
    assert state.failed
    assert "BackoffLimitExceeded" in state.message


def ready(kind: str, name: str, component: str) -> WorkloadState:
    return WorkloadState(kind=kind, name=name, component=component, ready=True, failed=False, message="ok")


def test_component_waits_for_its_dependencies_and_session_is_ready_only_when_all_are() -> None:
    catalog = default_catalog()
    postgres, kafka = catalog.components["postgres"], catalog.components["kafka"]
    dependent = kafka.model_copy(update={"depends_on": ("postgres",)})
    conditions = status.observe([postgres, dependent], ["postgres"], [], {}, generation=3)
    assert conditions[0].reason == "Progressing"
    assert conditions[1].reason == "WaitingForDependencies"
    assert "postgres" in conditions[1].message
    assert all(c.observed_generation == 3 for c in conditions)
    overall = status.ready_condition(conditions, 3, None)
    assert overall.status == "False"
    assert status.phase(overall, conditions, False) == Phase.PROVISIONING

    done = [
        ready("StatefulSet", "postgres", "postgres"),
        ready("Job", "postgres-init", "postgres"),
        ready("StatefulSet", "kafka", "kafka"),
        ready("Job", "kafka-topics", "kafka"),
    ]
    conditions = status.observe([postgres, dependent], ["postgres", "kafka"], done, {}, generation=3)
    overall = status.ready_condition(conditions, 3, None)
    assert [c.status for c in conditions] == ["True", "True"]
    assert overall.reason == "AllComponentsReady"
    assert status.phase(overall, conditions, False) == Phase.READY
    assert status.phase(overall, conditions, True) == Phase.TERMINATING


def test_missing_cluster_prerequisite_is_named() -> None:
    kafka = default_catalog().components["kafka"]
    [condition] = status.observe([kafka], [], [], {"kafka": ("networking.istio.io/v1",)}, 1)
    assert condition.reason == "ClusterPrerequisiteMissing"
    assert "networking.istio.io/v1" in condition.message


def test_invalid_environment_fails_the_session() -> None:
    overall = status.ready_condition([], 1, "unit: 'week99' is not a unit")
    assert overall.reason == "InvalidEnvironment"
    assert status.phase(overall, [], False) == Phase.FAILED


def test_transition_time_changes_only_with_status() -> None:
    kafka = default_catalog().components["kafka"]
    [condition] = status.observe([kafka], [], [], {}, 1)
    first = status.with_transition_times([condition], [], "2026-01-01T00:00:00Z")
    again = status.with_transition_times([condition], first, "2026-01-01T00:05:00Z")
    assert again[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    flipped = condition.model_copy(update={"status": "True"})
    changed = status.with_transition_times([flipped], first, "2026-01-01T00:05:00Z")
    assert changed[0]["lastTransitionTime"] == "2026-01-01T00:05:00Z"


def test_only_a_change_of_status_or_reason_is_a_change_of_state() -> None:
    def cond(status_: str, reason: str, message: str) -> Condition:
        return Condition(
            type="KafkaReady", status=status_, reason=reason, message=message, observedGeneration=1
        )

    written = {
        "conditions": [cond("False", "Progressing", "StatefulSet kafka: not found").model_dump(by_alias=True)]
    }
    assert not status.changes_state(written, [cond("False", "Progressing", "StatefulSet kafka: 0/1 ready")])
    assert status.changes_state(written, [cond("True", "Ready", "StatefulSet kafka: 1/1 ready")])
    assert status.changes_state(written, [cond("False", "Failed", "Job topics: BackoffLimitExceeded")])
    assert status.changes_state({}, [cond("False", "Progressing", "")])
