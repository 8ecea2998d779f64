"""The objects that make a namespace a learner's own and nobody else's: Pod Security labels,
quota, limits, network isolation and a learner identity limited to the namespace."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from labenv import names, quantity
from labenv.components.model import Component, PodSecurityLevel
from labenv.components.render import SessionContext

Obj = dict[str, Any]

# Room in the quota for what the learner runs beside the components (their own app, a second broker
# in a lab, a rolling update's surge pod).
LEARNER_HEADROOM = {"cpu": Decimal("1"), "memory": quantity.parse("2Gi"), "storage": quantity.parse("5Gi")}
MAX_PODS = 30
MAX_CLAIMS = 10
# Defaults for containers that set no resources (the learner's own pods).
CONTAINER_DEFAULT_REQUEST = {"cpu": "100m", "memory": "128Mi"}
CONTAINER_DEFAULT_LIMIT = {"cpu": "500m", "memory": "512Mi"}

_LEVEL_ORDER = [PodSecurityLevel.RESTRICTED, PodSecurityLevel.BASELINE, PodSecurityLevel.PRIVILEGED]

# What the learner may do in their namespace. Quota, LimitRange, NetworkPolicy, Roles and the
# namespace itself stay read-only or invisible: changing them would escape the lab's limits.
_WORKLOAD_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
_READ_VERBS = ["get", "list", "watch"]
LEARNER_RULES: list[Obj] = [
    {
        "apiGroups": [""],
        "verbs": _WORKLOAD_VERBS,
        "resources": [
            "pods",
            "pods/log",
            "pods/exec",
            "pods/portforward",
            "pods/attach",
            "services",
            "configmaps",
            "secrets",
            "persistentvolumeclaims",
            "serviceaccounts",
        ],
    },
    # Endpoints read-only: writing them points a Service past the lab's egress policy (CVE-2021-25740).
    {
        "apiGroups": [""],
        "verbs": _READ_VERBS,
        "resources": ["events", "resourcequotas", "limitranges", "endpoints"],
    },
    {
        "apiGroups": ["apps"],
        "verbs": _WORKLOAD_VERBS,
        "resources": [
            "deployments",
            "deployments/scale",
            "statefulsets",
            "statefulsets/scale",
            "replicasets",
        ],
    },
    {"apiGroups": ["batch"], "verbs": _WORKLOAD_VERBS, "resources": ["jobs", "cronjobs"]},
    {"apiGroups": ["autoscaling"], "verbs": _WORKLOAD_VERBS, "resources": ["horizontalpodautoscalers"]},
    {"apiGroups": ["networking.k8s.io"], "verbs": _WORKLOAD_VERBS, "resources": ["ingresses"]},
    {"apiGroups": ["networking.k8s.io"], "verbs": _READ_VERBS, "resources": ["networkpolicies"]},
    {"apiGroups": ["events.k8s.io"], "verbs": _READ_VERBS, "resources": ["events"]},
]


def pod_security_level(components: Iterable[Component]) -> PodSecurityLevel:
    """The strictest level every component can run under."""
    levels = [c.pod_security.level for c in components] or [PodSecurityLevel.RESTRICTED]
    return max(levels, key=_LEVEL_ORDER.index)


def namespace(ctx: SessionContext, session_uid: str, components: Iterable[Component]) -> Obj:
    components = list(components)
    level = pod_security_level(components)
    labels = {
        **ctx.labels(),
        names.LABEL_SESSION_UID: session_uid,
        "pod-security.kubernetes.io/enforce": level.value,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "latest",
    }
    for component in components:
        labels.update(component.namespace_labels)
    exceptions = [f"{c.name}: {c.pod_security.reason}" for c in components if c.pod_security.reason]
    annotations = {names.ANNOTATION_PSA_EXCEPTION: "; ".join(exceptions)} if exceptions else {}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ctx.namespace, "labels": labels, "annotations": annotations},
    }


def _metadata(name: str, ctx: SessionContext) -> Obj:
    return {
        "name": name,
        "namespace": ctx.namespace,
        "labels": {**ctx.labels(), names.LABEL_COMPONENT: "tenancy"},
    }


def quota_totals(components: Iterable[Component]) -> dict[str, Decimal]:
    """Requests, limits and storage of all components plus the learner's headroom."""
    totals = {
        "requests.cpu": LEARNER_HEADROOM["cpu"],
        "requests.memory": LEARNER_HEADROOM["memory"],
        "limits.cpu": LEARNER_HEADROOM["cpu"] * 2,
        "limits.memory": LEARNER_HEADROOM["memory"] * 2,
        "requests.storage": LEARNER_HEADROOM["storage"],
    }
    for c in components:
        where = f"components/{c.name}/component.yaml: resources"
        totals["requests.cpu"] += quantity.parse(c.resources.requests.cpu, f"{where}.requests.cpu")
        totals["requests.memory"] += quantity.parse(c.resources.requests.memory, f"{where}.requests.memory")
        totals["limits.cpu"] += quantity.parse(c.resources.limits.cpu, f"{where}.limits.cpu")
        totals["limits.memory"] += quantity.parse(c.resources.limits.memory, f"{where}.limits.memory")
        totals["requests.storage"] += quantity.parse(c.resources.storage, f"{where}.storage")
    return totals


def resource_quota(ctx: SessionContext, components: Iterable[Component]) -> Obj:
    totals = quota_totals(components)
    hard = {
        key: (quantity.cpu(v) if key.endswith("cpu") else quantity.memory(v)) for key, v in totals.items()
    }
    hard |= {
        "pods": str(MAX_PODS),
        "persistentvolumeclaims": str(MAX_CLAIMS),
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata("labenv-quota", ctx),
        "spec": {"hard": hard},
    }


def limit_range(ctx: SessionContext) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata("labenv-limits", ctx),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": dict(CONTAINER_DEFAULT_LIMIT),
                    "defaultRequest": dict(CONTAINER_DEFAULT_REQUEST),
                }
            ]
        },
    }


def network_policies(ctx: SessionContext) -> list[Obj]:
    """Deny by default; allow traffic inside the namespace and DNS lookups."""
    same_namespace: list[Obj] = [{"podSelector": {}}]
    dns = {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _metadata("labenv-default-deny", ctx),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _metadata("labenv-allow-namespace", ctx),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": same_namespace}],
                "egress": [{"to": same_namespace}, dns],
            },
        },
    ]


# Subresources that reach into a running pod, and with it into its ServiceAccount's token.
_INTO_PODS = {"pods/exec", "pods/attach", "pods/portforward"}


def _read_only(rule: Obj) -> Obj:
    return {
        **rule,
        "verbs": [v for v in rule["verbs"] if v in _READ_VERBS],
        "resources": [r for r in rule["resources"] if r not in _INTO_PODS],
    }


def learner_rules(components: Iterable[Component]) -> list[Obj]:
    """The base Role (read-only when a component keeps the namespace to itself), plus what the unit's
    components grant for their own APIs (Istio routing, only in units that enrol in the mesh)."""
    components = list(components)
    base = LEARNER_RULES
    if not all(c.learner_writes_namespace for c in components):
        base = [_read_only(rule) for rule in LEARNER_RULES]
    return [*base, *(rule.as_rbac() for c in components for rule in c.learner_rules)]


def learner_identity(ctx: SessionContext, components: Iterable[Component]) -> list[Obj]:
    account = names.LEARNER_SERVICE_ACCOUNT
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(account, ctx),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _metadata(account, ctx),
            "rules": learner_rules(components),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(account, ctx),
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ctx.namespace}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        },
    ]


def connection_secret(ctx: SessionContext, settings: Mapping[str, str]) -> Obj:
    # `data`, not `stringData`: server-side apply tracks ownership of `data` keys, so a setting a
    # component no longer publishes is removed on the next apply.
    data = {key: base64.b64encode(value.encode()).decode() for key, value in settings.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(names.CONNECTION_SECRET, ctx),
        "data": data,
    }


def objects(ctx: SessionContext, components: Iterable[Component]) -> list[Obj]:
    components = list(components)
    return [
        resource_quota(ctx, components),
        limit_range(ctx),
        *network_policies(ctx),
        *learner_identity(ctx, components),
    ]
