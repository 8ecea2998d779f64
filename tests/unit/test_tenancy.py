"""The namespace's limits: quota from the components, isolation, and what the learner may not touch."""

from __future__ import annotations

from labenv import quantity
from labenv.api import SessionSpec
from labenv.catalog.loader import default_catalog
from labenv.components import credentials
from labenv.components.model import PodSecurity, PodSecurityLevel
from labenv.reconcile import session, tenancy


def state_for(unit: str) -> session.DesiredState:
    catalog = default_catalog()
    spec = SessionSpec(learner="ada", course="infra-36w", unit=unit)
    resolved = session.resolve(catalog, spec)
    ctx = session.context(f"ada-{unit}", "labenv", spec, "img:1")
    return session.desired(catalog, resolved, ctx, "uid-1", credentials.missing(resolved.components, {}))


def test_quota_covers_the_components_plus_headroom_and_forbids_external_services() -> None:
    state = state_for("week21")
    quota = next(o for o in state.tenancy if o["kind"] == "ResourceQuota")["spec"]["hard"]
    cpu = sum(quantity.parse(p.component.resources.requests.cpu) for p in state.components)
    assert {p.name for p in state.components} >= {"kafka", "workspace"}
    assert quantity.parse(quota["requests.cpu"]) == cpu + tenancy.LEARNER_HEADROOM["cpu"]
    assert quota["services.loadbalancers"] == "0"
    assert quota["services.nodeports"] == "0"


def test_namespace_is_restricted_unless_a_component_documents_an_exception() -> None:
    state = state_for("week21")
    labels = state.namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["labenv.io/session-uid"] == "uid-1"
    kafka = default_catalog().components["kafka"]
    relaxed = kafka.model_copy(
        update={"pod_security": PodSecurity(level=PodSecurityLevel.BASELINE, reason="why")}
    )
    assert tenancy.pod_security_level([kafka, relaxed]) == PodSecurityLevel.BASELINE


def test_learner_cannot_change_isolation_or_rbac() -> None:
    writable = {
        (g, r)
        for rule in tenancy.LEARNER_RULES
        if "create" in rule["verbs"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    for forbidden in [
        ("networking.k8s.io", "networkpolicies"),
        ("", "resourcequotas"),
        ("", "limitranges"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("", "namespaces"),
    ]:
        assert forbidden not in writable
    assert ("", "pods") in writable
    assert ("apps", "deployments") in writable


def test_default_deny_with_traffic_allowed_inside_the_namespace() -> None:
    policies = [o for o in state_for("week5").tenancy if o["kind"] == "NetworkPolicy"]
    deny = next(p for p in policies if p["metadata"]["name"] == "labenv-default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allow = next(p for p in policies if p["metadata"]["name"] == "labenv-allow-namespace")
    assert allow["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_credentials_are_generated_once() -> None:
    components = list(default_catalog().components.values())
    first = credentials.missing(components, {})
    assert len(first["kafka-cluster-id"]) == 22
    assert credentials.missing(components, first) == {}
    partial = {k: v for k, v in first.items() if k != "postgres-password"}
    assert set(credentials.missing(components, partial)) == {"postgres-password"}
