"""Observed workloads -> per-component conditions, the Ready condition and the session's phase."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labenv import names
from labenv.api import Condition, Phase
from labenv.components.model import Component

Obj = dict[str, Any]


@dataclass(frozen=True)
class WorkloadState:
    """What the operator keeps of one workload: enough to judge readiness, nothing more."""

    kind: str
    name: str
    component: str
    ready: bool
    failed: bool
    message: str


def _replicas(spec: Mapping[str, Any]) -> int:
    replicas = spec.get("replicas", 1)
    return int(replicas) if replicas is not None else 1


def workload_state(obj: Mapping[str, Any]) -> WorkloadState:
    """Readiness of a Deployment, StatefulSet or Job, judged as `kubectl rollout status` would."""
    kind, meta = obj["kind"], obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    component = (meta.get("labels") or {}).get(names.LABEL_COMPONENT, "")
    current = status.get("observedGeneration", 0) >= meta.get("generation", 0)
    ready = failed = False
    if kind == "Job":
        conditions = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
        ready, failed = "Complete" in conditions, "Failed" in conditions
        message = (
            conditions["Failed"].get("message", "failed")
            if failed
            else (
                "completed"
                if ready
                else f"{status.get('active', 0)} running, {status.get('failed', 0)} failed"
            )
        )
    else:
        want = _replicas(spec)
        have = status.get("availableReplicas" if kind == "Deployment" else "readyReplicas", 0) or 0
        updated = status.get("updatedReplicas", 0) or 0
        ready = current and have >= want and updated >= want
        message = f"{have}/{want} ready"
    return WorkloadState(
        kind=kind,
        name=meta["name"],
        component=component,
        ready=ready,
        failed=failed,
        message=f"{kind} {meta['name']}: {message}",
    )


@dataclass(frozen=True)
class ComponentObservation:
    component: Component
    applied: bool
    waiting_for: tuple[str, ...]
    missing_apis: tuple[str, ...]
    workloads: tuple[WorkloadState, ...]


def component_condition(obs: ComponentObservation, generation: int) -> Condition:
    c = obs.component
    kind = names.condition_type(c.name)

    def cond(status: str, reason: str, message: str) -> Condition:
        return Condition(
            type=kind, status=status, reason=reason, message=message, observedGeneration=generation
        )

    if obs.missing_apis:
        return cond(
            "False",
            "ClusterPrerequisiteMissing",
            f"the cluster does not serve {', '.join(obs.missing_apis)}; an admin must install it",
        )
    if obs.waiting_for:
        return cond(
            "False", "WaitingForDependencies", f"waiting for {', '.join(obs.waiting_for)} to be ready"
        )
    if not obs.applied:
        return cond("False", "NotApplied", "objects not applied yet")
    seen = {(w.kind, w.name): w for w in obs.workloads}
    failed = [w.message for w in obs.workloads if w.failed]
    if failed:
        return cond("False", "Failed", "; ".join(failed))
    missing = [f"{r.kind} {r.name}: not found" for r in c.readiness if (r.kind, r.name) not in seen]
    pending = [
        seen[(r.kind, r.name)].message
        for r in c.readiness
        if (r.kind, r.name) in seen and not seen[(r.kind, r.name)].ready
    ]
    if missing or pending:
        return cond("False", "Progressing", "; ".join(missing + pending))
    return cond("True", "Ready", "; ".join(w.message for w in obs.workloads) or "no workloads to wait for")


def ready_condition(components: Sequence[Condition], generation: int, failure: str | None) -> Condition:
    if failure:
        return Condition(
            type="Ready",
            status="False",
            reason="InvalidEnvironment",
            message=failure,
            observedGeneration=generation,
        )
    not_ready = [c for c in components if c.status != "True"]
    if not_ready:
        message = "; ".join(f"{c.type.removesuffix('Ready')}: {c.reason}" for c in not_ready)
        return Condition(
            type="Ready",
            status="False",
            reason="ComponentsNotReady",
            message=message,
            observedGeneration=generation,
        )
    return Condition(
        type="Ready",
        status="True",
        reason="AllComponentsReady",
        message=f"{len(components)} components ready",
        observedGeneration=generation,
    )


def phase(ready: Condition, components: Iterable[Condition], terminating: bool) -> Phase:
    if terminating:
        return Phase.TERMINATING
    if ready.reason == "InvalidEnvironment" or any(c.reason == "Failed" for c in components):
        return Phase.FAILED
    return Phase.READY if ready.status == "True" else Phase.PROVISIONING


def with_transition_times(
    conditions: Iterable[Condition], previous: Iterable[Mapping[str, Any]], now: str
) -> list[Obj]:
    """Conditions as JSON, keeping lastTransitionTime where the status did not change."""
    before = {p.get("type"): p for p in previous}
    result = []
    for c in conditions:
        old = before.get(c.type)
        moment = old.get("lastTransitionTime", now) if old and old.get("status") == c.status else now
        result.append(c.model_copy(update={"last_transition_time": moment}).model_dump(by_alias=True))
    return result


def observe(
    components: Sequence[Component],
    applied: Iterable[str],
    workloads: Iterable[WorkloadState],
    missing_apis: Mapping[str, tuple[str, ...]],
    generation: int,
) -> list[Condition]:
    """One condition per component, dependencies first; a component waits for unready dependencies."""
    applied = set(applied)
    by_component: dict[str, list[WorkloadState]] = {}
    for w in workloads:
        by_component.setdefault(w.component, []).append(w)
    ready: set[str] = set()
    conditions: list[Condition] = []
    for c in components:
        obs = ComponentObservation(
            component=c,
            applied=c.name in applied,
            waiting_for=tuple(d for d in c.depends_on if d not in ready),
            missing_apis=missing_apis.get(c.name, ()),
            workloads=tuple(by_component.get(c.name, ())),
        )
        condition = component_condition(obs, generation)
        if condition.status == "True":
            ready.add(c.name)
        conditions.append(condition)
    return conditions


def ready_components(conditions: Iterable[Condition], components: Sequence[Component]) -> set[str]:
    ready_types = {c.type for c in conditions if c.status == "True"}
    return {c.name for c in components if names.condition_type(c.name) in ready_types}


def changes_state(before: Mapping[str, Any], conditions: Iterable[Condition]) -> bool:
    """Whether these conditions differ from the written status in more than their messages."""
    old = {c.get("type"): (c.get("status"), c.get("reason")) for c in before.get("conditions", [])}
    return any(old.get(c.type) != (c.status, c.reason) for c in conditions)
