"""The cloud part of a session as the reconciler sees it (pure): what stays in the namespace, the
conditions of the components a cloud stack replaces, and the objects the stack's outputs need.

`labenv.cloud.lifecycle` decides what the cloud provides (`cloud_plan`) and runs the stack; this
module fits that plan into the reconcile loop; `labenv.controller.cloud` makes the API calls.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labenv import api, names
from labenv.api import Condition, SessionSpec
from labenv.catalog.model import ResolvedUnit
from labenv.cloud.lifecycle import (
    CONDITION_DESTROY_FAILED,
    CONDITION_READY,
    FINALIZER,
    FINGERPRINT_ANNOTATION,
    CloudPlan,
    SessionOwner,
    cloud_plan,
)
from labenv.components.model import Component
from labenv.components.render import SessionContext
from labenv.errors import InvalidInput
from labenv.reconcile import status

Obj = dict[str, Any]
# The stack's outputs are written into the connection Secret by a field manager of their own: the
# reconciler's apply of that Secret (the in-namespace settings) neither needs nor removes them.
FIELD_MANAGER = "labenv-cloud-stack"
EGRESS_POLICY = "labenv-allow-managed-services"
NOT_CONFIGURED = "CloudNotConfigured"
MANAGED_PORTS = {"postgres": 5432, "object-store": 443}


@dataclass(frozen=True)
class CloudState:
    """The session's stack as the status reports it."""

    plan: CloudPlan
    condition: Condition  # CloudStackReady
    # The operator cannot serve the plan at all (no cloud settings): the session is Failed.
    failure: str | None = None
    # The stack failed: converge again after this many seconds.
    retry_after: float | None = None

    @property
    def ready(self) -> bool:
        return self.condition.status == "True"


def plan(resolved: ResolvedUnit, spec: SessionSpec) -> CloudPlan | None:
    """`cloud_plan`, refusing a variant that would strand an in-namespace component (one line)."""
    found = cloud_plan(resolved, spec.variant)
    if found is None:
        return None
    for component in resolved.components:
        if found.replaces(component.name):
            continue
        for dependency in component.depends_on:
            if found.replaces(dependency):
                raise InvalidInput(
                    f"spec.variant: {found.cloud} moves {dependency} out of the namespace, but "
                    f"{component.name} ({resolved.course.slug}/{resolved.unit.id}) connects to the "
                    f"in-namespace {dependency}; start this unit without a variant"
                )
    return found


def in_namespace(resolved: ResolvedUnit, cloud: CloudPlan | None) -> ResolvedUnit:
    """The unit without the components the stack provides: what the namespace renders, sizes and runs."""
    if cloud is None or not cloud.managed:
        return resolved
    kept = tuple(c for c in resolved.components if not cloud.replaces(c.name))
    return resolved.model_copy(
        update={"components": kept, "options": {c.name: resolved.options[c.name] for c in kept}}
    )


def pending(cloud: CloudPlan, generation: int) -> CloudState:
    condition = Condition(
        type=CONDITION_READY,
        status="False",
        reason="StackPending",
        message=f"the {cloud.cloud} stack has not been created yet",
        observed_generation=generation,
    )
    return CloudState(cloud, condition)


def not_configured(cloud: CloudPlan, reason: str, generation: int) -> CloudState:
    needs = [*(f"managed {name}" for name in cloud.managed), *(["a sandbox"] if cloud.sandbox else [])]
    message = f"this session needs {cloud.cloud} ({', '.join(needs)}), but {reason}"
    condition = Condition(
        type=CONDITION_READY,
        status="False",
        reason=NOT_CONFIGURED,
        message=message,
        observed_generation=generation,
    )
    return CloudState(cloud, condition, failure=message)


def carried(cloud: CloudPlan, previous: Mapping[str, Any], generation: int) -> CloudState:
    """The stack's state as last reported (workload events do not touch the stack)."""
    for raw in previous.get("conditions") or []:
        if raw.get("type") == CONDITION_READY:
            condition = Condition.model_validate({**raw, "observedGeneration": generation})
            failure = condition.message if condition.reason == NOT_CONFIGURED else None
            return CloudState(cloud, condition, failure=failure)
    return pending(cloud, generation)


def managed_condition(component: Component, state: CloudState) -> Condition:
    """A component the stack provides is as ready as the stack."""
    stack = state.condition
    return Condition(
        type=names.condition_type(component.name),
        status=stack.status,
        reason=stack.reason,
        message=f"managed in {state.plan.cloud} by the session's cloud stack: {stack.message}",
        observed_generation=stack.observed_generation,
    )


def observe(
    components: Sequence[Component],
    applied: Iterable[str],
    workloads: Iterable[status.WorkloadState],
    missing_apis: Mapping[str, tuple[str, ...]],
    generation: int,
    state: CloudState | None,
) -> list[Condition]:
    """`status.observe`, with the components the stack provides taking the stack's condition (and
    their dependants waiting for the stack); one condition per component, in the same order."""
    if state is None or not state.plan.managed:
        return status.observe(components, applied, workloads, missing_apis, generation)
    managed = {c.name for c in components if state.plan.replaces(c.name)}
    stand_ins = [
        c.model_copy(update={"readiness": (), "depends_on": ()}) if c.name in managed else c
        for c in components
    ]
    applied = {*applied, *(managed if state.ready else ())}
    missing = {k: v for k, v in missing_apis.items() if k not in managed}
    observed = status.observe(stand_ins, applied, workloads, missing, generation)
    return [
        managed_condition(c, state) if c.name in managed else condition
        for c, condition in zip(components, observed, strict=True)
    ]


def conditions(state: CloudState | None) -> list[Condition]:
    """What the status reports of the stack, next to the components' conditions (Ready includes it)."""
    return [] if state is None else [state.condition]


def owner(learner: str, labels: Mapping[str, str], expires_at: str) -> SessionOwner:
    return SessionOwner(
        learner=learner,
        cohort=labels.get(names.LABEL_COHORT) or "none",
        expires_at=api.parse_timestamp(expires_at),
    )


def outputs_secret(ctx: SessionContext, outputs: Mapping[str, str], fingerprint: str) -> Obj:
    """The stack's outputs as the connection Secret's keys (applied by FIELD_MANAGER), marked with the
    fingerprint of the stack they came from, so a lost Secret means running `up` again."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": names.CONNECTION_SECRET,
            "namespace": ctx.namespace,
            "annotations": {FINGERPRINT_ANNOTATION: fingerprint},
        },
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in outputs.items()},
    }


def managed_egress(ctx: SessionContext, cloud: CloudPlan | None) -> list[Obj]:
    """Egress to the managed services, which the namespace's default-deny would block.

    Their addresses are known only at run time (RDS and Cloud SQL hosts, S3/GCS ranges), so the
    policy opens their port to any address; the database's own firewall admits the cluster only."""
    ports = sorted({MANAGED_PORTS[name] for name in cloud.managed} if cloud else set())
    if not ports:
        return []
    everywhere = [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": EGRESS_POLICY,
                "namespace": ctx.namespace,
                "labels": {**ctx.labels(), names.LABEL_COMPONENT: "tenancy"},
            },
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": everywhere, "ports": [{"protocol": "TCP", "port": p} for p in ports]}],
            },
        }
    ]


def has_finalizer(body: Mapping[str, Any]) -> bool:
    return FINALIZER in (body.get("metadata", {}).get("finalizers") or ())


def finalizers_patch(body: Mapping[str, Any], add: bool) -> Obj:
    """A merge patch adding or removing only labenv's cloud finalizer, guarded by the resourceVersion
    (a merge patch replaces the whole list: another controller's finalizer added meanwhile is kept by
    the conflict it causes)."""
    meta = body["metadata"]
    others = [f for f in meta.get("finalizers") or () if f != FINALIZER]
    return {
        "metadata": {
            "resourceVersion": meta["resourceVersion"],
            "finalizers": [*others, FINALIZER] if add else others,
        }
    }


def destroying_status(
    previous: Mapping[str, Any], condition: Condition | None, message: str, now: str
) -> Obj:
    """The status of a session whose stack is being destroyed: Terminating, with CloudStackDestroyFailed
    set (or cleared) when `condition` is given."""
    before = list(previous.get("conditions") or [])
    if condition is None:
        kept, updated = before, []
    else:
        kept = [c for c in before if c.get("type") != condition.type]
        updated = status.with_transition_times([condition], before, now)
    return {
        **previous,
        "phase": api.Phase.TERMINATING.value,
        "message": message,
        "conditions": [*kept, *updated],
    }


def destroy_failed(previous: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == CONDITION_DESTROY_FAILED and c.get("status") == "True"
        for c in previous.get("conditions") or []
    )
