"""The chart's RBAC is exactly what the operator does, derived from the code rather than from memory.

What the operator needs is collected four ways, each from the real thing:

1. **Requests**: the reconciler, the sweeper and the cohort reconciler run against an in-memory API
   server (`FakeApiServer`, below): every component of the catalog applied (added to a unit through
   spec.overrides, every workload reported ready) and pruned again, a generated Secret completed, a
   component reset, a session deleted, a cohort converged, everything expired. Each HTTP request is
   turned into (group, resource, verb) the way the API server's authorizer sees it; a server-side apply
   that creates its object is authorized as `create` as well as `patch` (k8s.io/apiserver
   pkg/endpoints/handlers/patch.go: createAuthorizerAttributes). Every unit of every course is rendered
   too, to check that the drive saw every kind a unit's options can produce.
2. **Watches**: every resource a registered Kopf handler or index is attached to is listed and watched;
   resources with change handlers are also patched (Kopf's progress and diff-base annotations).
3. **Grants**: every rule of every Role the operator applies (the learner Role of
   src/labenv/reconcile/tenancy.py, the component Roles of environments/components/*/rbac.yaml.j2).
   RBAC escalation prevention lets a subject create a Role only with permissions it holds itself
   (https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping).
4. **Kopf itself**, which this code base does not call: posting Events and watching CRDs
   (https://docs.kopf.dev/en/stable/deployment/, RBAC section; kopf/_core/reactor/observation.py).

The chart's rules (charts/labenv/files/rbac/operator.yaml and labs.yaml, which the ClusterRole templates
include verbatim) must equal that set: a new component kind or a new API call fails here until the chart
grants it, and a grant nothing needs any more fails here until it is removed. peering.yaml (bound only
with peering.enabled) must equal what Kopf's peering does.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import kopf
import pytest
import yaml

import labenv.controller
from labenv import api, install, names
from labenv.catalog.loader import default_catalog
from labenv.catalog.model import SupportMode
from labenv.components import credentials
from labenv.components.render import render_component
from labenv.controller.cohorts import CohortReconciler
from labenv.controller.config import OperatorConfig
from labenv.controller.reconciler import Reconciler, RetryLater
from labenv.controller.sweeper import sweep_once
from labenv.kube.client import ApiError, Kube
from labenv.kube.credentials import Credentials
from labenv.reconcile import cohort, session
from labenv.reconcile.status import WorkloadState
from tests.unit.test_catalog_renders import render  # every unit rendered once per test run (cached)

Obj = dict[str, Any]
Perm = tuple[str, str, str]  # (API group, resource[/subresource], verb)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "labenv"
RBAC = CHART / "files" / "rbac"
RULE_FILES = [RBAC / "operator.yaml", RBAC / "labs.yaml"]  # always bound
PEERING_FILE = RBAC / "peering.yaml"  # bound with peering.enabled
CATALOG = default_catalog()
SESSIONS_NAMESPACE = "labenv"
UNITS = [
    (c.slug, u.id)
    for c in CATALOG.courses.values()
    for u in c.units
    if u.support.mode != SupportMode.UNSUPPORTED
]

# Built-in kinds the catalog renders, as the API server's discovery names them (plural, namespaced).
# A component that renders a kind missing here fails `test_every_rendered_kind_is_known`: add it here
# and grant it in charts/labenv/files/rbac/labs.yaml.
BUILTIN_KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("v1", "ResourceQuota"): ("resourcequotas", True),
    ("v1", "LimitRange"): ("limitranges", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("batch/v1", "Job"): ("jobs", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("networking.istio.io/v1", "Gateway"): ("gateways", True),
    ("networking.istio.io/v1", "VirtualService"): ("virtualservices", True),
}

# What Kopf does on its own (not visible in labenv's code): post Events about handler failures on the
# handled object (kopf/_cogs/clients/events.py, core v1 Events) and watch CRDs to notice resources
# appearing (kopf/_core/reactor/observation.py resource_observer). Kopf runs standalone (no peering
# objects) and cluster-wide (it does not list or watch namespaces: observation.py namespace_observer).
KOPF_FRAMEWORK: set[Perm] = {
    ("", "events", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
}


# Kopf peering between replicas (LABENV_PEERING, peering.enabled in the chart): every replica lists and
# watches the cluster-wide peering objects and merge-patches its heartbeat into its own one
# (kopf/_core/engines/peering.py: touch, clean; kopf/_core/reactor/orchestration.py starts the watch);
# the sweeper gets that object to know whether its replica is the active one (controller/peering.py).
KOPF_PEERING: set[Perm] = {
    ("kopf.dev", "clusterkopfpeerings", "list"),
    ("kopf.dev", "clusterkopfpeerings", "watch"),
    ("kopf.dev", "clusterkopfpeerings", "patch"),
    ("kopf.dev", "clusterkopfpeerings", "get"),
}


def crd_kinds() -> dict[tuple[str, str], tuple[str, bool]]:
    kinds = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                kinds[key] = (spec["names"]["plural"], spec["scope"] == "Namespaced")
    return kinds


KINDS = {**BUILTIN_KINDS, **crd_kinds()}


# --- an API server in a dict ---------------------------------------------------------------------------

_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


def _parse(path: str) -> tuple[str, str, str, str, str, str] | None:
    """`/apis/apps/v1/namespaces/x/deployments/y/status` -> (group, version, namespace, resource, name,
    subresource), as the API server's RequestInfoFactory splits it; None for a discovery document."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""
    return group, version, namespace, resource, name, sub


def _selects(selector: str, labels: Mapping[str, str]) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if key not in labels or (value and labels[key] != value):
            return False
    return True


def _merge(base: Obj, patch: Mapping[str, Any]) -> Obj:
    """RFC 7386 merge patch."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class FakeApiServer(Kube):
    """`Kube` with its one network method replaced by a dict; records what RBAC would be asked."""

    def __init__(self) -> None:
        super().__init__(Credentials(server="https://fake.invalid"), session=None)  # type: ignore[arg-type]
        self.objects: dict[tuple[str, str, str, str], Obj] = {}
        self.asked: set[Perm] = set()
        self.roles: list[Obj] = []  # every Role as it was applied or created
        self.uids = 0

    def put(self, obj: Obj) -> Obj:
        group = obj["apiVersion"].rpartition("/")[0]
        plural, _ = KINDS[(obj["apiVersion"], obj["kind"])]
        meta = obj.setdefault("metadata", {})
        self.uids += 1
        meta.setdefault("uid", f"uid-{self.uids}")
        meta.setdefault("creationTimestamp", api.timestamp(api.now()))
        meta["resourceVersion"] = str(self.uids)
        self.objects[(group, plural, meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def find(self, api_version: str, kind: str, name: str, namespace: str = "") -> Obj | None:
        plural, _ = KINDS[(api_version, kind)]
        return self.objects.get((api_version.rpartition("/")[0], plural, namespace, name))

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str | int | bool] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        parsed = _parse(path)
        if parsed is None:
            return self._discovery(path)
        group, _, namespace, resource, name, sub = parsed
        query = query or {}
        verb = {
            "GET": "get" if name else ("watch" if query.get("watch") else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
        self.asked.add((group, f"{resource}/{sub}" if sub else resource, verb))
        if (group, resource, sub) == ("rbac.authorization.k8s.io", "roles", "") and method in {
            "POST",
            "PATCH",
        }:
            self.roles.append(body)
        key = (group, resource, namespace, name)
        found = self.objects.get(key)
        not_found = ApiError(404, "NotFound", f"{method} {path}: 404 not found")
        if method == "GET" and name:
            if found is None:
                raise not_found
            return found
        if method == "GET":
            selector = str(query.get("labelSelector", ""))
            items = [
                o
                for (g, r, ns, _), o in self.objects.items()
                if (g, r) == (group, resource)
                and (not namespace or ns == namespace)
                and _selects(selector, o["metadata"].get("labels") or {})
            ]
            return {"items": items}
        if method == "POST":
            if found is not None:
                raise ApiError(409, "AlreadyExists", f"POST {path}: 409 exists")
            return self.put(json.loads(json.dumps(body)))
        if method == "DELETE":
            if self.objects.pop(key, None) is None:
                raise not_found
            return {}
        # PATCH
        if content_type == "application/apply-patch+yaml":
            if found is None:
                if sub:
                    raise not_found
                self.asked.add((group, resource, "create"))  # apply that creates is a create
                return self.put(json.loads(json.dumps(body)))
            patch = {"status": body["status"]} if sub == "status" else body
        else:
            if found is None:
                raise not_found
            patch = body
        merged = _merge(found, patch)
        self.objects[key] = merged
        return merged

    def _discovery(self, path: str) -> Obj:
        api_version = "v1" if path == "/api/v1" else path.removeprefix("/apis/")
        resources = [
            {"name": plural, "kind": kind, "namespaced": namespaced}
            for (av, kind), (plural, namespaced) in KINDS.items()
            if av == api_version
        ]
        if not resources:
            raise ApiError(404, "NotFound", f"GET {path}: 404")
        return {"resources": resources}


# --- driving the operator's code ------------------------------------------------------------------------


def spec_of(course: str, unit: str) -> api.SessionSpec:
    return api.SessionSpec(learner="ada", course=course, unit=unit)


def unit_components(course: str, unit: str) -> set[str]:
    return {c.name for c in session.resolve(CATALOG, spec_of(course, unit)).components}


def component_groups() -> list[list[str]]:
    """Every component, packed into few sessions: two components that publish the same setting go to
    different sessions (a unit where both do, with different values, is refused as a catalog error)."""
    groups: list[tuple[list[str], set[str]]] = []
    for name, component in sorted(CATALOG.components.items()):
        keys = set(component.settings)
        for members, taken in groups:
            if not keys & taken:
                members.append(name)
                taken.update(keys)
                break
        else:
            groups.append(([name], keys))
    return [members for members, _ in groups]


def session_body(kube: FakeApiServer, name: str, spec: api.SessionSpec) -> Obj:
    return kube.put(
        {
            "apiVersion": names.API_VERSION,
            "kind": names.SESSION_KIND,
            "metadata": {"name": name, "namespace": SESSIONS_NAMESPACE, "generation": 1},
            "spec": spec.model_dump(by_alias=True, exclude_none=True),
        }
    )


async def converge_everything(
    kube: FakeApiServer, reconciler: Reconciler, name: str, spec: api.SessionSpec
) -> Obj:
    """One pass that applies every component: all are marked applied and every workload they render is
    reported ready (as KWOK makes them), instead of one dependency level a pass."""
    resolved = session.resolve(CATALOG, spec)
    ctx = session.context(name, SESSIONS_NAMESPACE, spec, OperatorConfig().workspace_image)
    desired = session.desired(CATALOG, resolved, ctx, "uid", credentials.missing(resolved.components, {}))
    workloads = [
        WorkloadState(o["kind"], o["metadata"]["name"], plan.name, True, False, "")
        for plan in desired.components
        for o in plan.objects
        if o["kind"] in {"Deployment", "StatefulSet", "Job"}
    ]
    body = session_body(kube, name, spec)
    body["status"] = {"appliedComponents": [c.name for c in resolved.components]}
    await reconciler.converge(body, lambda: workloads)
    stored = kube.find(names.API_VERSION, names.SESSION_KIND, name, SESSIONS_NAMESPACE)
    assert stored is not None
    return stored


async def drive_operator(kube: FakeApiServer) -> None:
    reconciler = Reconciler(kube, CATALOG, OperatorConfig())
    course, unit = UNITS[0]
    plain = api.SessionSpec(learner="ada", course=course, unit=unit)

    # Sessions that add every component of the catalog to the smallest unit (spec.overrides can name any
    # component, so every component's objects are the operator's to apply), from scratch to all applied;
    # then each goes back to the plain unit, so every added component is pruned.
    smallest = spec_of(*min(UNITS, key=lambda cu: len(unit_components(*cu))))
    for index, group in enumerate(component_groups()):
        added = {"components": {name: {} for name in group}}
        spec = api.SessionSpec.model_validate({**smallest.model_dump(by_alias=True), "overrides": added})
        stored = await converge_everything(kube, reconciler, f"all-{index}", spec)
        applied = stored["status"]["appliedComponents"]
        stored["spec"] = smallest.model_dump(by_alias=True, exclude_none=True)
        stored["status"]["appliedComponents"] = applied
        await reconciler.converge(stored, list)

    # A plain session whose generated Secret lacks keys; then one of its components is reset.
    stored = await converge_everything(kube, reconciler, "bob", plain)
    secret = kube.find("v1", "Secret", names.GENERATED_SECRET, names.lab_namespace("bob"))
    assert secret is not None
    secret["data"] = {}
    await reconciler.converge(stored, list)
    component = session.resolve(CATALOG, plain).components[0].name
    stored["metadata"].setdefault("annotations", {})[names.ANNOTATION_RESET] = component
    claim_labels = {names.LABEL_SESSION: "bob", names.LABEL_COMPONENT: component}  # as a StatefulSet makes it
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-0", "namespace": names.lab_namespace("bob"), "labels": claim_labels},
        }
    )
    for _ in range(3):  # the first pass deletes and waits; the next one sees them gone
        try:
            await reconciler.converge(stored, list)
            break
        except RetryLater:
            continue

    # The session is deleted: its namespace goes.
    await reconciler.teardown(SESSIONS_NAMESPACE, "bob", stored["metadata"]["uid"])

    # A cohort creates its learners' sessions and deletes the one of a learner it no longer lists.
    spec = api.CohortSpec(course=course, unit=unit, learners=("ann", "ben"))
    cohort_body = kube.put(api.cohort_body("spring", SESSIONS_NAMESPACE, spec))
    cohorts = CohortReconciler(kube, CATALOG)
    gone = cohort.Member(
        name=names.cohort_session_name("spring", "cyd"),
        learner="cyd",
        unit=unit,
        ttl="8h",
        created=api.timestamp(api.now()),
        phase="Ready",
        message="",
    )
    await cohorts.converge(cohort_body, [gone])

    # Everything expires.
    await sweep_once(kube, api.now() + timedelta(days=3650))


@cache
def operator_requests() -> tuple[frozenset[Perm], tuple[Obj, ...]]:
    """What the operator asked of the API, and every Role it applied along the way."""
    kube = FakeApiServer()
    asyncio.run(drive_operator(kube))
    return frozenset(kube.asked), tuple(kube.roles)


def _plural(selector: Any) -> str:
    """Handlers here name resources as (group, version, plural): Kopf keeps the plural as `any_name`."""
    plural = selector.plural or selector.any_name
    assert isinstance(plural, str), f"handler on {selector}: name its resource by group, version, plural"
    assert plural.islower(), f"handler on {selector}: name its resource by its plural"
    return plural


def kopf_watches() -> set[Perm]:
    for module in pkgutil.iter_modules(labenv.controller.__path__):
        if module.name.endswith("handlers"):
            importlib.import_module(f"labenv.controller.{module.name}")
    registry = kopf.get_default_registry()
    needed: set[Perm] = set()
    watched = [
        *registry._indexing.get_all_handlers(),
        *registry._watching.get_all_handlers(),
        *registry._spawning.get_all_handlers(),
    ]
    for handler in watched:
        needed |= {(handler.selector.group, _plural(handler.selector), v) for v in ("list", "watch")}
    for handler in registry._changing.get_all_handlers():
        needed |= {(handler.selector.group, _plural(handler.selector), v) for v in ("list", "watch", "patch")}
    return needed


def expand(rules: Iterable[Mapping[str, Any]]) -> set[Perm]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def every_component_alone() -> Iterator[Obj]:
    """Each component with its default options, as the pruner renders it (it may be in no unit)."""
    course, unit = UNITS[0]
    ctx = session.context(
        "ada-x", SESSIONS_NAMESPACE, api.SessionSpec(learner="ada", course=course, unit=unit), "i:1"
    )
    for component in CATALOG.components.values():
        defaults = {k: v.default for k, v in component.options.items()}
        yield from render_component(CATALOG.root / "components", component, defaults, ctx)


@cache
def required() -> frozenset[Perm]:
    asked, roles = operator_requests()
    granted_by_roles = {p for role in roles for p in expand(role["rules"])}
    return frozenset(asked | kopf_watches() | KOPF_FRAMEWORK | granted_by_roles)


def chart_rules(files: Iterable[Path] = RULE_FILES) -> list[Obj]:
    rules: list[Obj] = []
    for path in files:
        rules.extend(yaml.safe_load(path.read_text()))
    return rules


def _table(perms: Iterable[Perm]) -> str:
    return "\n".join(f"  {g or 'core'} {r}: {v}" for g, r, v in sorted(perms))


# --- tests -------------------------------------------------------------------------------------------


def test_every_rendered_kind_is_known() -> None:
    rendered = [
        *every_component_alone(),
        *(o for c, u in UNITS for p in render(c, u).components for o in p.objects),
    ]
    unknown = {(o["apiVersion"], o["kind"]) for o in rendered} - set(KINDS)
    assert not unknown, (
        f"components render {sorted(unknown)}: add them to BUILTIN_KINDS here and grant them in "
        "charts/labenv/files/rbac/labs.yaml"
    )


def test_the_derivation_sees_the_operator_at_work() -> None:
    """Guards the derivation itself: if driving the operator silently did nothing, every check below
    would pass with an empty set."""
    asked, roles = operator_requests()
    assert ("apps", "statefulsets", "create") in asked  # components applied (kafka)
    assert ("", "namespaces", "delete") in asked  # teardown and sweep
    assert ("", "secrets", "create") in asked  # generated credentials
    assert ("labenv.io", "labsessions/status", "patch") in asked
    assert {r["metadata"]["name"] for r in roles} >= {names.LEARNER_SERVICE_ACCOUNT}
    assert ("labenv.io", "labsessions", "watch") in kopf_watches()


def test_chart_grants_everything_the_operator_does() -> None:
    missing = required() - expand(chart_rules())
    assert not missing, (
        "the operator needs these and charts/labenv/files/rbac/*.yaml does not grant them:\n"
        + _table(missing)
    )


def test_chart_grants_nothing_the_operator_does_not_do() -> None:
    excess = expand(chart_rules()) - required()
    assert not excess, "charts/labenv/files/rbac/*.yaml grants what nothing uses any more:\n" + _table(excess)


def test_every_component_kind_was_applied_and_pruned() -> None:
    """Guards the derivation: it must have driven the apply of every kind that any component renders
    (with any options a unit gives it), and the prune of every kind that a component which some unit
    lacks renders (a component in every unit is never pruned, so its kinds need no delete)."""
    asked, _ = operator_requests()
    everywhere = set.intersection(*(unit_components(c, u) for c, u in UNITS))
    rendered = [(p.name, o) for c, u in UNITS for p in render(c, u).components for o in p.objects]
    for name, obj in rendered:
        plural, _ = KINDS[(obj["apiVersion"], obj["kind"])]
        group = obj["apiVersion"].rpartition("/")[0]
        for verb in ("create", "patch") if name in everywhere else ("create", "patch", "delete"):
            assert (group, plural, verb) in asked, (
                f"{name}: {obj['kind']} {obj['metadata']['name']}: {verb} not seen"
            )


# Never granted, whatever a future component asks for: each would let the operator take over nodes,
# storage, identities, RBAC or admission of the whole cluster.
FORBIDDEN: set[tuple[str, str]] = {
    ("", "nodes"),
    ("", "nodes/proxy"),
    ("", "persistentvolumes"),
    ("", "serviceaccounts/token"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("apiextensions.k8s.io", "customresourcedefinitions/status"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    ("certificates.k8s.io", "certificatesigningrequests"),
    ("storage.k8s.io", "storageclasses"),
    ("scheduling.k8s.io", "priorityclasses"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
}
# The only cluster-scoped resources the operator may touch, and how. (The integration test checks the
# same against the live API server's discovery, which knows the scope of every resource.)
CLUSTER_SCOPED_ALLOWED = {
    ("", "namespaces"): {"get", "list", "create", "patch", "delete"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("kopf.dev", "clusterkopfpeerings"): {"list", "watch", "patch", "get"},
}
ALL_FILES = [*RULE_FILES, PEERING_FILE]


def test_rules_have_no_wildcards_urls_or_escalation_verbs() -> None:
    for rule in chart_rules(ALL_FILES):
        flat = [*rule.get("apiGroups", []), *rule.get("resources", []), *rule.get("verbs", [])]
        assert not any("*" in item for item in flat), rule
        assert "nonResourceURLs" not in rule, rule
        assert not {"escalate", "bind", "impersonate", "approve", "sign"} & set(rule.get("verbs", [])), rule
        for key in ("apiGroups", "resources", "verbs"):
            assert rule.get(key), f"{key} missing or empty: {rule}"


def test_nothing_dangerous_cluster_wide() -> None:
    granted = expand(chart_rules(ALL_FILES))
    forbidden = {p for p in granted if (p[0], p[1]) in FORBIDDEN}
    assert not forbidden, _table(forbidden)
    for (group, resource), verbs in CLUSTER_SCOPED_ALLOWED.items():
        extra = {v for g, r, v in granted if (g, r) == (group, resource)} - verbs
        assert not extra, f"{group or 'core'} {resource}: {sorted(extra)}"


def test_peering_rules_are_kopfs_and_patch_only_labenvs_peering_object() -> None:
    rules = chart_rules([PEERING_FILE])
    assert expand(rules) == KOPF_PEERING
    for rule in rules:
        if {"patch", "get"} & set(rule["verbs"]):
            assert rule.get("resourceNames") == [install.PEERING], rule
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert f"- name: LABENV_PEERING\n              value: {install.PEERING}\n" in deployment


@pytest.mark.parametrize(
    "template", ["clusterrole-operator.yaml", "clusterrole-labs.yaml", "clusterrole-peering.yaml"]
)
def test_cluster_roles_include_the_rule_files_verbatim(template: str) -> None:
    """The templates must not add rules of their own: the files are what this module checks."""
    text = (CHART / "templates" / template).read_text()
    rule_file = template.removeprefix("clusterrole-")
    assert f'.Files.Get "files/rbac/{rule_file}"' in text
    assert text.count("apiGroups") == 0, f"{template} writes rules inline"
