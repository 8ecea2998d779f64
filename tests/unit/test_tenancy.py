"""The namespace's limits: quota from the components, isolation, and what the learner may not touch."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from labenv import quantity
from labenv.api import SessionSpec
from labenv.catalog.loader import default_catalog
from labenv.components import credentials
from labenv.components.model import LearnerRule, PodSecurity, PodSecurityLevel
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


def _learner_groups(state: session.DesiredState) -> set[str]:
    role = next(o for o in state.tenancy if o["kind"] == "Role")
    return {g for rule in role["rules"] for g in rule["apiGroups"]}


def test_istio_routing_is_granted_only_in_units_that_enrol_in_the_mesh() -> None:
    catalog = default_catalog()
    mesh_units = [u for u in catalog.courses["infra-36w"].units if "istio" in u.components]
    assert mesh_units
    assert "networking.istio.io" in _learner_groups(state_for(mesh_units[0].id))
    assert "networking.istio.io" not in _learner_groups(state_for("week21"))


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (
            {"api_groups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create"]},
            "api_groups",
        ),
        ({"api_groups": [""], "resources": ["resourcequotas"], "verbs": ["update"]}, "api_groups"),
        ({"api_groups": ["example.io"], "resources": ["*"], "verbs": ["get"]}, "resources"),
        ({"api_groups": ["example.io"], "resources": ["widgets"], "verbs": ["escalate"]}, "verbs"),
    ],
)
def test_a_component_cannot_grant_learners_a_way_out(rule: dict[str, list[str]], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        LearnerRule.model_validate(rule)


def test_in_a_virtual_cluster_unit_the_learner_only_reads_the_lab_namespace() -> None:
    catalog = default_catalog()
    unit = next(u for u in catalog.courses["infra-36w"].units if "vcluster" in u.components)
    role = next(o for o in state_for(unit.id).tenancy if o["kind"] == "Role")
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert verbs == {"get", "list", "watch"}
    assert "secrets" in resources  # the virtual cluster's kubeconfig
    assert not resources & {"pods/exec", "pods/attach", "pods/portforward"}
