"""Learner isolation proven on the real API server (RBAC and Pod Security admission on).

Session A (`isa-week21`) is the learner under test, session B (`isb-week5`) its neighbour. The access
matrix asks the API server (SubjectAccessReview) what A's `learner` identity may do; the escalation
tests then try it for real with a token from the TokenRequest API.
"""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from labenv import api
from labenv.kube.client import Kube
from tests.integration.conftest import SESSIONS_NAMESPACE, Cli, Operator

pytestmark = pytest.mark.integration

A, B = "isa-week21", "isb-week5"
LAB_A, LAB_B = f"lab-{A}", f"lab-{B}"
LEARNER_A = f"system:serviceaccount:{LAB_A}:learner"
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "default", SESSIONS_NAMESPACE)

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
ALL = READ + WRITE

# --- the access matrix ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    verb: str
    group: str
    resource: str  # "pods" or "pods/exec"
    namespace: str  # "" for cluster scope
    name: str = ""

    def review(self, user: str, groups: Sequence[str]) -> dict[str, Any]:
        resource, _, subresource = self.resource.partition("/")
        attributes = {
            "verb": self.verb,
            "group": self.group,
            "resource": resource,
            "subresource": subresource,
            "namespace": self.namespace,
            "name": self.name,
        }
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": {},
            "spec": {"user": user, "groups": list(groups), "resourceAttributes": attributes},
        }

    def __str__(self) -> str:
        where = self.namespace or "cluster"
        group = f".{self.group}" if self.group else ""
        return f"{self.verb} {self.resource}{group}{'/' + self.name if self.name else ''} in {where}"


# What a learner does in a lab: run and debug workloads, keep configuration and secrets.
LAB_WORK: list[tuple[str, str, tuple[str, ...]]] = [
    ("", "pods", ALL),
    ("", "pods/log", ("get",)),
    ("", "pods/exec", ("create", "get")),
    ("", "pods/portforward", ("create", "get")),
    ("", "pods/attach", ("create", "get")),
    ("", "services", ALL),
    ("", "configmaps", ALL),
    ("", "secrets", ALL),
    ("", "persistentvolumeclaims", ALL),
    ("", "serviceaccounts", ALL),
    ("", "events", READ),
    ("", "resourcequotas", READ),
    ("", "limitranges", READ),
    ("apps", "deployments", ALL),
    ("apps", "deployments/scale", ("get", "update", "patch")),
    ("apps", "statefulsets", ALL),
    ("apps", "replicasets", ALL),
    ("batch", "jobs", ALL),
    ("batch", "cronjobs", ALL),
    ("autoscaling", "horizontalpodautoscalers", ALL),
    ("networking.k8s.io", "ingresses", ALL),
    ("networking.k8s.io", "networkpolicies", READ),
    ("events.k8s.io", "events", READ),
]
# What keeps the lab a lab: the learner may read its limits but never change them or its identity.
GUARD_RAILS: list[tuple[str, str, tuple[str, ...]]] = [
    ("", "resourcequotas", WRITE),
    ("", "limitranges", WRITE),
    ("networking.k8s.io", "networkpolicies", WRITE),
    ("rbac.authorization.k8s.io", "roles", (*ALL, "bind", "escalate")),
    ("rbac.authorization.k8s.io", "rolebindings", ALL),
    ("", "serviceaccounts/token", ("create",)),
    ("", "pods/ephemeralcontainers", ("update", "patch")),
    ("", "pods/status", ("update", "patch")),
    ("discovery.k8s.io", "endpointslices", WRITE),
    ("labenv.io", "labsessions", ALL),
    ("labenv.io", "labcohorts", ALL),
]
CLUSTER_WIDE: list[tuple[str, str, tuple[str, ...]]] = [
    ("", "nodes", ALL),
    ("", "nodes/proxy", ("get", "create")),
    ("", "namespaces", ALL),
    ("", "persistentvolumes", ALL),
    ("storage.k8s.io", "storageclasses", ALL),
    ("apiextensions.k8s.io", "customresourcedefinitions", ALL),
    ("rbac.authorization.k8s.io", "clusterroles", (*ALL, "bind", "escalate")),
    ("rbac.authorization.k8s.io", "clusterrolebindings", ALL),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", ALL),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", ALL),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies", ALL),
    ("certificates.k8s.io", "certificatesigningrequests", ALL),
    ("scheduling.k8s.io", "priorityclasses", ALL),
    ("authorization.k8s.io", "subjectaccessreviews", ("create",)),
    ("authentication.k8s.io", "tokenreviews", ("create",)),
    ("", "users", ("impersonate",)),
    ("", "groups", ("impersonate",)),
    ("", "serviceaccounts", ("impersonate", *ALL)),
    ("", "pods", READ),
    ("", "secrets", READ),
    ("labenv.io", "labsessions", ALL),
    ("labenv.io", "labcohorts", ALL),
]


def cells(
    rules: list[tuple[str, str, tuple[str, ...]]], namespace: str, verbs: tuple[str, ...] | None = None
) -> list[Cell]:
    return [Cell(v, g, r, namespace) for g, r, vs in rules for v in (verbs or vs)]


def learner_groups(namespace: str) -> list[str]:
    """The groups the API server puts in a ServiceAccount token's identity."""
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]


def access(kubeconfig: Path, user: str, groups: Sequence[str], matrix: Sequence[Cell]) -> list[bool]:
    """Ask the API server about every cell (SubjectAccessReview), a few dozen requests at a time."""

    async def go() -> list[bool]:
        async with await Kube.connect(str(kubeconfig)) as kube:
            gate = asyncio.Semaphore(24)

            async def one(cell: Cell) -> bool:
                async with gate:
                    answer = await kube.create(cell.review(user, groups))
                return bool(answer["status"].get("allowed"))

            return list(await asyncio.gather(*(one(c) for c in matrix)))

    return asyncio.run(go())


# --- fixtures -------------------------------------------------------------------------------------


def wait_for_the_api(cli: Cli) -> None:
    """A fresh CRD's watch cache answers 429 "storage is (re)initializing" for a moment, and labenv's
    client does not retry 429 yet (reported to the lead): wait until a list succeeds."""
    cli.wait_for(
        "LabSessions to be served",
        lambda: cli.labenv("list", "-A", "-o", "json", check=False).returncode == 0,
        timeout=60,
    )


@pytest.fixture(scope="module")
def labs(cli: Cli, operator: Operator) -> Iterator[dict[str, dict[str, Any]]]:
    wait_for_the_api(cli)
    found = {}
    for unit, learner, name in (("week21", "isa", A), ("week5", "isb", B)):
        out = cli.labenv("start", unit, "--learner", learner, "--wait", "--timeout", "240", "-o", "json")
        found[name] = json.loads(out.stdout)
    yield found
    for name in (A, B):
        cli.labenv("stop", name, check=False)


@pytest.fixture(scope="module")
def admin_server(cli: Cli) -> dict[str, str]:
    config = json.loads(cli.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = config["clusters"][0]["cluster"]
    return {"server": cluster["server"], "ca": cluster["certificate-authority-data"]}


def token_kubeconfig(path: Path, server: dict[str, str], namespace: str, token: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": server["server"], "certificate-authority-data": server["ca"]}}
        ],
        "users": [{"name": "learner", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "learner", "namespace": namespace}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def learner_a(
    cli: Cli, labs: dict[str, Any], admin_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig with A's real learner identity: a TokenRequest token (`kubectl create token`)."""
    token = cli.kubectl("create", "token", "learner", "-n", LAB_A, "--duration", "10m").stdout.strip()
    return token_kubeconfig(tmp_path_factory.mktemp("learner") / "a.kubeconfig", admin_server, LAB_A, token)


def as_learner(
    cli: Cli, kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return cli.kubectl("--kubeconfig", str(kubeconfig), *args, check=False, stdin=stdin)


def forbidden(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode != 0 and "forbidden" in result.stderr.lower()


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def epoch(timestamp: str) -> int:
    return int(api.parse_timestamp(timestamp).timestamp())


# --- the matrix -----------------------------------------------------------------------------------


def test_access_matrix_own_lab_only(cli: Cli, local_cluster: Any, labs: dict[str, Any]) -> None:
    own_allowed = cells(LAB_WORK, LAB_A)
    own_denied = [
        *cells(GUARD_RAILS, LAB_A),
        *(Cell(v, "", "namespaces", LAB_A, name=LAB_A) for v in ("get", "update", "patch", "delete")),
    ]
    everything = [(g, r, tuple(dict.fromkeys((*vs, *ALL)))) for g, r, vs in [*LAB_WORK, *GUARD_RAILS]]
    elsewhere = [c for ns in (LAB_B, *SYSTEM_NAMESPACES) for c in cells(everything, ns)]
    cluster = cells(CLUSTER_WIDE, "")
    matrix = [*own_allowed, *own_denied, *elsewhere, *cluster]
    answers = access(local_cluster.kubeconfig, LEARNER_A, learner_groups(LAB_A), matrix)
    verdict = dict(zip(matrix, answers, strict=True))

    refused_lab_work = [str(c) for c in own_allowed if not verdict[c]]
    unexpected_allows = [str(c) for c in [*own_denied, *elsewhere, *cluster] if verdict[c]]
    print(f"\naccess matrix: {len(matrix)} cells checked, {len(unexpected_allows)} unexpected allows")
    assert not refused_lab_work, f"the learner cannot do its lab work: {refused_lab_work}"
    assert not unexpected_allows, f"the learner may do what it must not: {unexpected_allows}"
    assert len(matrix) >= 1000


def test_learner_cannot_redirect_services_with_endpoints(
    cli: Cli, local_cluster: Any, labs: dict[str, Any]
) -> None:
    """Write access to Endpoints lets a tenant point a Service (and any Ingress or load balancer that
    forwards to it) at IPs outside its namespace, past its own egress NetworkPolicy: CVE-2021-25740.
    Kubernetes removed it from the `edit` and `admin` roles in 1.22; the learner Role still grants it."""
    matrix = cells([("", "endpoints", WRITE)], LAB_A)
    answers = access(local_cluster.kubeconfig, LEARNER_A, learner_groups(LAB_A), matrix)
    assert [str(c) for c, allowed in zip(matrix, answers, strict=True) if allowed] == []


# --- escalation with the learner's real token -----------------------------------------------------


def test_learner_cannot_grant_itself_more_rights(cli: Cli, learner_a: Path) -> None:
    subject = f"--serviceaccount={LAB_A}:learner"
    attempts = {
        "bind cluster-admin": ["create", "rolebinding", "esc1", "--clusterrole=cluster-admin", subject],
        "bind admin": ["create", "rolebinding", "esc2", "--clusterrole=admin", subject],
        "bind edit": ["create", "rolebinding", "esc3", "--clusterrole=edit", subject],
        "cluster-wide binding": [
            "create",
            "clusterrolebinding",
            f"esc-{A}",
            "--clusterrole=cluster-admin",
            subject,
        ],
        "own role": ["create", "role", "esc4", "--verb=*", "--resource=*"],
        "mint a long token": ["create", "token", "learner", "--duration=8760h"],
        "impersonate an admin": ["get", "pods", "--as=system:admin", "--as-group=system:masters"],
    }
    allowed = {
        what: r.stdout
        for what, args in attempts.items()
        if not forbidden(r := as_learner(cli, learner_a, *args))
    }
    assert allowed == {}
    bindings = cli.get("rolebindings", "-n", LAB_A)["items"]
    assert [b["metadata"]["name"] for b in bindings if b["metadata"]["name"].startswith("esc")] == []
    assert not cli.exists("clusterrolebinding", f"esc-{A}")


def test_learner_cannot_loosen_its_namespace(cli: Cli, learner_a: Path) -> None:
    namespace_before = cli.get("namespace", LAB_A)["metadata"]["labels"]
    quota_before = cli.get("resourcequota", "labenv-quota", "-n", LAB_A)["spec"]
    limits_before = cli.get("limitrange", "labenv-limits", "-n", LAB_A)["spec"]
    policies_before = {
        p["metadata"]["name"]: p["spec"] for p in cli.get("networkpolicies", "-n", LAB_A)["items"]
    }
    allow_all = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all", "namespace": LAB_A},
        "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}], "policyTypes": ["Ingress", "Egress"]},
    }
    attempts = {
        "privileged namespace": [
            "label",
            "namespace",
            LAB_A,
            "pod-security.kubernetes.io/enforce=privileged",
            "--overwrite",
        ],
        "drop its session label": ["label", "namespace", LAB_A, "labenv.io/session-uid-"],
        "raise the quota": [
            "patch",
            "resourcequota",
            "labenv-quota",
            "--type=merge",
            "-p",
            '{"spec":{"hard":{"pods":"1000"}}}',
        ],
        "delete the quota": ["delete", "resourcequota", "labenv-quota"],
        "raise the limits": [
            "patch",
            "limitrange",
            "labenv-limits",
            "--type=json",
            "-p",
            '[{"op":"remove","path":"/spec/limits"}]',
        ],
        "delete the limits": ["delete", "limitrange", "labenv-limits"],
        "delete default-deny": ["delete", "networkpolicy", "labenv-default-deny"],
        "edit the allow policy": [
            "patch",
            "networkpolicy",
            "labenv-allow-namespace",
            "--type=merge",
            "-p",
            '{"spec":{"egress":[{}]}}',
        ],
    }
    allowed = {
        what: r.stdout
        for what, args in attempts.items()
        if not forbidden(r := as_learner(cli, learner_a, *args))
    }
    created = as_learner(cli, learner_a, "create", "-f", "-", stdin=json.dumps(allow_all))
    assert allowed == {}
    assert forbidden(created), created.stdout
    assert cli.get("namespace", LAB_A)["metadata"]["labels"] == namespace_before
    assert cli.get("resourcequota", "labenv-quota", "-n", LAB_A)["spec"] == quota_before
    assert cli.get("limitrange", "labenv-limits", "-n", LAB_A)["spec"] == limits_before
    policies = {p["metadata"]["name"]: p["spec"] for p in cli.get("networkpolicies", "-n", LAB_A)["items"]}
    assert policies == policies_before
    assert {"labenv-default-deny", "labenv-allow-namespace"} <= set(policies)


RESTRICTED_CONTAINER: dict[str, Any] = {
    "name": "app",
    "image": "busybox:1.37",
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {**RESTRICTED_CONTAINER, **spec.pop("container", {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": LAB_A},
        "spec": {"containers": [container], **spec},
    }


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("privileged", pod("privileged", container={"securityContext": {"privileged": True}})),
        ("host-path", pod("host-path", volumes=[{"name": "root", "hostPath": {"path": "/"}}])),
        ("host-network", pod("host-network", hostNetwork=True)),
        ("host-pid", pod("host-pid", hostPID=True)),
        (
            "root",
            pod(
                "root",
                container={"securityContext": {**RESTRICTED_CONTAINER["securityContext"], "runAsUser": 0}},
            ),
        ),
        (
            "sys-admin",
            pod(
                "sys-admin",
                container={
                    "securityContext": {
                        **RESTRICTED_CONTAINER["securityContext"],
                        "capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]},
                    }
                },
            ),
        ),
    ],
)
def test_pod_security_admission_refuses_the_learners_escape_pods(
    cli: Cli, learner_a: Path, name: str, body: dict[str, Any]
) -> None:
    result = as_learner(cli, learner_a, "create", "-f", "-", stdin=json.dumps(body))
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr
    assert not cli.exists("pod", name, "-n", LAB_A)


def test_learner_may_run_a_restricted_pod(cli: Cli, learner_a: Path) -> None:
    """The control for the refusals above: the same learner may create a pod that follows the rules."""
    result = as_learner(cli, learner_a, "create", "-f", "-", stdin=json.dumps(pod("allowed")))
    try:
        assert result.returncode == 0, result.stderr
    finally:
        cli.kubectl("delete", "pod", "allowed", "-n", LAB_A, "--wait=false", check=False)


def test_a_privileged_deployment_never_gets_a_pod(cli: Cli, learner_a: Path) -> None:
    template = pod("x", container={"securityContext": {"privileged": True}})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "escape", "namespace": LAB_A},
        "spec": {
            "selector": {"matchLabels": {"app": "escape"}},
            "template": {"metadata": {"labels": {"app": "escape"}}, "spec": template["spec"]},
        },
    }
    created = as_learner(cli, learner_a, "create", "-f", "-", stdin=json.dumps(deployment))
    try:
        assert created.returncode == 0, created.stderr  # admitted with a warning: pods are checked
        assert "would violate PodSecurity" in created.stderr

        def refused() -> str:
            for rs in cli.get("replicasets", "-n", LAB_A, "-l", "app=escape")["items"]:
                for c in rs.get("status", {}).get("conditions", []):
                    if c["type"] == "ReplicaFailure" and "violates PodSecurity" in c.get("message", ""):
                        return str(c["message"])
            return ""

        cli.wait_for("the ReplicaSet to be refused its pods", refused, timeout=60)
        assert cli.get("pods", "-n", LAB_A, "-l", "app=escape")["items"] == []
    finally:
        cli.kubectl("delete", "deployment", "escape", "-n", LAB_A, check=False)


@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer"])
def test_learner_cannot_expose_the_lab_outside_the_cluster(cli: Cli, learner_a: Path, kind: str) -> None:
    name = f"expose-{kind.lower()}"
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": LAB_A},
        "spec": {"type": kind, "selector": {"app": "kafka"}, "ports": [{"port": 9092}]},
    }
    result = as_learner(cli, learner_a, "create", "-f", "-", stdin=json.dumps(service))
    assert result.returncode != 0
    assert "exceeded quota: labenv-quota" in result.stderr
    assert not cli.exists("service", name, "-n", LAB_A)
    plain = {**service, "spec": {**service["spec"], "type": "ClusterIP"}}  # the control
    ok = as_learner(cli, learner_a, "create", "-f", "-", stdin=json.dumps(plain))
    cli.kubectl("delete", "service", name, "-n", LAB_A, check=False)
    assert ok.returncode == 0, ok.stderr


def test_learner_token_reaches_nothing_outside_its_lab(cli: Cli, learner_a: Path) -> None:
    attempts = {
        "neighbour's secrets": ["get", "secrets", "-n", LAB_B],
        "neighbour's pods": ["get", "pods", "-n", LAB_B],
        "exec into the neighbour": ["exec", "-n", LAB_B, "postgres-0", "--", "true"],
        "system secrets": ["get", "secrets", "-n", "kube-system"],
        "LabSessions": ["get", "labsessions", "-n", SESSIONS_NAMESPACE],
        "nodes": ["get", "nodes"],
        "namespaces": ["get", "namespaces"],
        "CRDs": ["get", "crds"],
        "cluster roles": ["get", "clusterroles"],
    }
    allowed = {
        what: r.stdout
        for what, args in attempts.items()
        if not forbidden(r := as_learner(cli, learner_a, *args))
    }
    assert allowed == {}
    own = as_learner(cli, learner_a, "get", "pods", "-o", "name")
    assert own.returncode == 0, own.stderr
    assert "pod/kafka-0" in own.stdout.split()


# --- credentials scoped in time -------------------------------------------------------------------


def test_kubeconfig_token_expires_with_the_session_and_works_only_in_its_lab(
    cli: Cli, labs: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "isa.kubeconfig"
    result = cli.labenv("kubeconfig", A, "--file", str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "token expires" in result.stderr
    config = yaml.safe_load(path.read_text())
    assert config["contexts"][0]["context"]["namespace"] == LAB_A
    token = config["users"][0]["user"]["token"]
    claims = jwt_claims(token)
    session = cli.get("labsession", A, "-n", SESSIONS_NAMESPACE)
    assert claims["sub"] == LEARNER_A
    assert claims["exp"] <= epoch(session["status"]["expiresAt"])
    assert claims["exp"] - claims["iat"] >= 600

    use = ["--kubeconfig", str(path)]
    mine = cli.kubectl(*use, "get", "pods", "-o", "name", check=False)
    assert mine.returncode == 0, mine.stderr
    assert "pod/kafka-0" in mine.stdout.split()
    assert forbidden(cli.kubectl(*use, "get", "pods", "-n", LAB_B, check=False))
    assert forbidden(cli.kubectl(*use, "get", "secrets", "-n", "kube-system", check=False))
    assert forbidden(cli.kubectl(*use, "get", "labsessions", "-n", SESSIONS_NAMESPACE, check=False))

    capped = yaml.safe_load(cli.labenv("kubeconfig", A, "--max-duration", "1h").stdout)
    claims = jwt_claims(capped["users"][0]["user"]["token"])
    assert claims["exp"] - claims["iat"] == 3600


def test_kubeconfig_for_an_unknown_session_is_one_line(cli: Cli, labs: dict[str, Any]) -> None:
    result = cli.labenv("kubeconfig", "nobody-week3", check=False)
    assert result.returncode == 5
    assert "session: 'nobody-week3' not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_no_long_lived_service_account_tokens_in_lab_namespaces(cli: Cli, labs: dict[str, Any]) -> None:
    cli.labenv("kubeconfig", A)
    secrets = cli.get("secrets", "-A", "--field-selector", "type=kubernetes.io/service-account-token")[
        "items"
    ]
    assert [
        s["metadata"]["namespace"] + "/" + s["metadata"]["name"]
        for s in secrets
        if s["metadata"]["namespace"].startswith("lab-")
    ] == []


def test_learner_tokens_die_with_the_session(
    cli: Cli, operator: Operator, admin_server: dict[str, str], tmp_path: Path
) -> None:
    """A short session: its token is clamped to the API's 10-minute minimum, so it could outlive the
    session's expiresAt; it does not, because deleting the session deletes the identity. The same holds
    for a legacy token Secret the learner makes itself."""
    name, lab = "isc-week5", "lab-isc-week5"
    cli.labenv("start", "week5", "--learner", "isc", "--ttl", "5m", "--wait", "--timeout", "240")
    path = tmp_path / "isc.kubeconfig"
    cli.labenv("kubeconfig", name, "--file", str(path))
    claims = jwt_claims(yaml.safe_load(path.read_text())["users"][0]["user"]["token"])
    assert claims["exp"] - claims["iat"] == 600
    assert cli.kubectl("--kubeconfig", str(path), "get", "pods", check=False).returncode == 0

    legacy = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "forever", "annotations": {"kubernetes.io/service-account.name": "learner"}},
    }
    made = cli.kubectl("--kubeconfig", str(path), "create", "-f", "-", stdin=json.dumps(legacy), check=False)
    configs = [path]
    if made.returncode == 0:  # the learner may write Secrets: such a token must die with the lab too
        raw = cli.wait_for(
            "the token controller to fill the Secret",
            lambda: (cli.get("secret", "forever", "-n", lab).get("data") or {}).get("token"),
            timeout=30,
        )
        forever = token_kubeconfig(
            tmp_path / "forever.kubeconfig", admin_server, lab, base64.b64decode(raw).decode()
        )
        assert cli.kubectl("--kubeconfig", str(forever), "get", "pods", check=False).returncode == 0
        configs.append(forever)

    cli.labenv("stop", name, "--wait")
    for config in configs:
        result = cli.kubectl("--kubeconfig", str(config), "get", "pods", check=False)
        assert result.returncode != 0
        assert "Unauthorized" in result.stderr or "must be logged in" in result.stderr


# --- secrets stay secret --------------------------------------------------------------------------


def generated_values(cli: Cli, namespace: str) -> list[str]:
    raw = cli.get("secret", "labenv-generated", "-n", namespace)["data"]
    return [base64.b64decode(v).decode() for v in raw.values()]


def test_secrets_appear_only_in_labenv_creds(
    cli: Cli, operator: Operator, labs: dict[str, Any], tmp_path: Path
) -> None:
    secrets = [v for ns in (LAB_A, LAB_B) for v in generated_values(cli, ns)]
    assert len(secrets) >= 4
    assert all(len(s) >= 16 for s in secrets)
    token = yaml.safe_load(cli.labenv("kubeconfig", A).stdout)["users"][0]["user"]["token"]

    places = {
        "operator log": operator.log.read_text(errors="replace"),
        "events": cli.kubectl("get", "events", "-A", "-o", "json").stdout,
        "LabSessions": cli.kubectl("get", "labsessions", "-A", "-o", "json").stdout,
        "labenv status (json)": cli.labenv("status", A, "-o", "json").stdout,
        "labenv status (table)": cli.labenv("status", B).stdout,
        "labenv list (json)": cli.labenv("list", "-A", "-o", "json").stdout,
        "labenv list (table)": cli.labenv("list", "-A").stdout,
        "labenv start (json)": cli.labenv("start", "week5", "--learner", "isb", "-o", "json").stdout,
        "labenv start --wait (table)": cli.labenv("start", "week21", "--learner", "isa", "--wait").stdout,
        "labenv doctor (json)": cli.labenv("doctor", "-o", "json", check=False).stdout,
    }
    leaks = {where: [s for s in [*secrets, token] if s in text] for where, text in places.items()}
    assert {where: found for where, found in leaks.items() if found} == {}
    creds = cli.labenv("creds", B).stdout  # the one place they belong, which also proves the search works
    assert any(s in creds for s in generated_values(cli, LAB_B))


# --- one learner's lab cannot speak for another's -------------------------------------------------


def test_learner_cannot_change_another_sessions_status(
    cli: Cli, learner_a: Path, labs: dict[str, Any]
) -> None:
    """A workload in A's namespace labelled as B's must not count as B's: the operator keys workloads
    by their labels only, so today A can turn B's session Failed."""
    spoof = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "spoof",
            "namespace": LAB_A,
            "labels": {
                "app.kubernetes.io/managed-by": "labenv",
                "labenv.io/session": B,
                "labenv.io/session-namespace": SESSIONS_NAMESPACE,
                "app.kubernetes.io/component": "postgres",
            },
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 1,
            # Refused pods: the Job can only fail (DeadlineExceeded), at once and every time.
            "template": {
                "spec": pod("x", restartPolicy="Never", container={"securityContext": {"privileged": True}})[
                    "spec"
                ]
            },
        },
    }
    created = as_learner(cli, learner_a, "create", "-f", "-", stdin=json.dumps(spoof))
    assert created.returncode == 0, created.stderr
    try:
        cli.wait_for(
            "the spoofing Job to fail",
            lambda: any(
                c["type"] == "Failed" and c["status"] == "True"
                for c in cli.get("job", "spoof", "-n", LAB_A).get("status", {}).get("conditions", [])
            ),
            timeout=60,
        )
        deadline = time.monotonic() + 10
        seen = set()
        while time.monotonic() < deadline:
            status = cli.get("labsession", B, "-n", SESSIONS_NAMESPACE)["status"]
            seen.add(f"{status['phase']}: {status.get('message', '')}")
            time.sleep(0.5)
        assert [s for s in seen if not s.startswith("Ready")] == []
    finally:
        cli.kubectl("delete", "job", "spoof", "-n", LAB_A, check=False)
