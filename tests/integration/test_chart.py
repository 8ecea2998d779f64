"""The Helm chart on the local control plane: lint, schema, server-side dry run, install, and the
operator running as the chart's ServiceAccount (a TokenRequest token, no admin rights) taking real
sessions from start to Ready to gone: proof that the chart's RBAC is enough.

What this cannot show: the operator Deployment installed by the chart gets a pod that KWOK marks
Running and Ready, but no container runs (KWOK has no kubelet), so the image, its entrypoint and the
probes are not exercised here; the operator that reconciles in these tests is a local process holding
the chart's identity. Run the chart on kind or a cloud cluster to exercise the container.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from labenv.localcluster import toolchain_paths
from tests.integration.conftest import Cli, Operator

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "labenv"
RELEASE = "labenv"
RELEASE_NAMESPACE = "labenv-system"
SESSIONS = "chart-sessions"  # not the `labenv` namespace other tests use: the chart creates this one
ACCOUNT = "labenv-operator"
OPERATOR_USER = f"system:serviceaccount:{RELEASE_NAMESPACE}:{ACCOUNT}"
POLICY = "labenv-operator-scope"
INSTALL_VALUES = ["--set", f"sessionsNamespace.name={SESSIONS}"]


def helm(cli: Cli, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(toolchain_paths().helm), *args],
        env=cli.env,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def template(cli: Cli, *args: str) -> list[dict[str, Any]]:
    out = helm(cli, "template", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, *INSTALL_VALUES, *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def can_i(cli: Cli, *args: str) -> bool:
    result = cli.kubectl("auth", "can-i", *args, "--as", OPERATOR_USER, check=False)
    assert result.stdout.strip() in {"yes", "no"}, result.stderr
    return result.stdout.strip() == "yes"


# --- without installing ----------------------------------------------------------------------------


def test_chart_lints_clean(cli: Cli) -> None:
    result = helm(cli, "lint", str(CHART), "--strict", *INSTALL_VALUES)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_defaults_render_every_object(cli: Cli) -> None:
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in template(cli))
    assert kinds == [
        "ClusterRole/labenv-labs",
        "ClusterRole/labenv-operator",
        "ClusterRoleBinding/labenv-labs",
        "ClusterRoleBinding/labenv-operator",
        "Deployment/labenv-operator",
        f"Namespace/{SESSIONS}",
        "Service/labenv-metrics",
        "ServiceAccount/labenv-operator",
        f"ValidatingAdmissionPolicy/{POLICY}",
        f"ValidatingAdmissionPolicyBinding/{POLICY}",
    ]
    monitor = next(
        d for d in template(cli, "--set", "serviceMonitor.enabled=true") if d["kind"] == "ServiceMonitor"
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("image.tag=latest", "tag"),
        ("image.digest=sha256:abc", "digest"),
        ("operator.sweepInterval=0", "sweepInterval"),
        ("operator.watchServerTimeout=300.5", "watchServerTimeout"),
        ("operator.watchClientTimeout=120", "watchClientTimeout"),
        ("resources.limits.memory=lots", "memory"),
        ("replicas=2", "replicas"),
        ("admissionPolicy.validationActions={Allow}", "validationActions"),
        ("sessionsNamespace.name=Not_A_Namespace", "sessionsNamespace"),
        ("sessionsNamespace.name=lab-sessions", "lab-"),
        (f"sessionsNamespace.name={RELEASE_NAMESPACE}", "release namespace"),
        ("securityContext.runAsUser=0", "runAsUser"),
        ("replicaCount=2", "peering.enabled"),
        ("serviceMonitor.interval=often", "interval"),
    ],
)
def test_bad_values_are_refused_naming_the_value(cli: Cli, value: str, named: str) -> None:
    result = helm(cli, "template", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, "--set", value, check=False)
    assert result.returncode != 0, f"{value} was accepted"
    assert named in result.stderr, result.stderr


PEERED = ["--set", "peering.enabled=true", "--set", "replicaCount=2"]


def test_cluster_roles_are_the_rule_files(cli: Cli) -> None:
    """tests/unit/test_chart_rbac.py checks the files; this checks they are what gets installed."""
    roles = {d["metadata"]["name"]: d["rules"] for d in template(cli, *PEERED) if d["kind"] == "ClusterRole"}
    files = {"labenv-operator": "operator.yaml", "labenv-labs": "labs.yaml", "labenv-peering": "peering.yaml"}
    assert set(roles) == set(files)
    for role, file in files.items():
        assert roles[role] == yaml.safe_load((CHART / "files" / "rbac" / file).read_text())
    standalone = {d["metadata"]["name"] for d in template(cli) if d["kind"] == "ClusterRole"}
    assert standalone == {"labenv-operator", "labenv-labs"}


def test_granted_cluster_scoped_resources_are_namespaces_crds_and_peering(cli: Cli) -> None:
    """The scope of each granted resource as this API server's discovery reports it."""
    cluster_scoped = set(cli.kubectl("api-resources", "--namespaced=false", "-o", "name").stdout.split())
    granted = {
        f"{resource.split('/')[0]}.{group}" if group else resource.split("/")[0]
        for d in template(cli, *PEERED)
        if d["kind"] == "ClusterRole"
        for rule in d["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert granted & cluster_scoped == {
        "namespaces",
        "customresourcedefinitions.apiextensions.k8s.io",
        "clusterkopfpeerings.kopf.dev",
    }


def test_rendered_chart_passes_server_side_dry_run(cli: Cli) -> None:
    cli.kubectl("create", "namespace", RELEASE_NAMESPACE, check=False)  # namespaced objects need it
    rendered = helm(
        cli, "template", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, *INSTALL_VALUES, "--include-crds"
    ).stdout
    result = cli.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=rendered)
    applied = [line.split()[0] for line in result.stdout.splitlines()]
    assert "customresourcedefinition.apiextensions.k8s.io/labsessions.labenv.io" in applied
    assert f"validatingadmissionpolicy.admissionregistration.k8s.io/{POLICY}" in applied
    assert "deployment.apps/labenv-operator" in applied
    assert len(applied) == len(template(cli)) + len(list((CHART / "crds").glob("*.yaml")))


# --- installed --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(cli: Cli) -> Iterator[None]:
    cli.kubectl("create", "namespace", RELEASE_NAMESPACE, check=False)
    # The operator pod must pass Pod Security "restricted" to be admitted at all.
    cli.kubectl(
        "label",
        "--overwrite",
        "namespace",
        RELEASE_NAMESPACE,
        "pod-security.kubernetes.io/enforce=restricted",
    )
    helm(
        cli,
        "install",
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NAMESPACE,
        *INSTALL_VALUES,
        "--wait",
        "--timeout",
        "3m",
    )
    yield
    helm(cli, "uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--ignore-not-found", "--wait", check=False)
    cli.kubectl(
        "delete", "namespace", SESSIONS, RELEASE_NAMESPACE, "--ignore-not-found", "--wait", "--timeout=120s"
    )


def operator_pod(cli: Cli) -> dict[str, Any]:
    pods = cli.get("pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod: dict[str, Any] = pods[0]
    return pod


def test_install_runs_one_restricted_operator_pod_on_a_fake_node(cli: Cli, installed: None) -> None:
    deployment = cli.get("deployment", "labenv-operator", "-n", RELEASE_NAMESPACE)
    assert deployment["status"]["availableReplicas"] == 1
    pod = operator_pod(cli)
    assert pod["status"]["phase"] == "Running"  # on KWOK: scheduled and marked Running, nothing executes
    node = cli.get("node", pod["spec"]["nodeName"])
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    container = pod["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health", "scheme": "HTTP"}
    assert {"name": "LABENV_SWEEP_INTERVAL", "value": "30"} in container["env"]
    assert pod["spec"]["serviceAccountName"] == ACCOUNT


def test_metrics_service_targets_the_operator_pod(cli: Cli, installed: None) -> None:
    service = cli.get("service", "labenv-metrics", "-n", RELEASE_NAMESPACE)
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("metrics", 9090)]
    ip = operator_pod(cli)["status"]["podIP"]

    def endpoints() -> list[tuple[str, int]]:
        slices = cli.get(
            "endpointslices", "-n", RELEASE_NAMESPACE, "-l", "kubernetes.io/service-name=labenv-metrics"
        )["items"]
        return [
            (address, port["port"])
            for s in slices
            for e in s.get("endpoints") or []
            for address in e["addresses"]
            for port in s.get("ports") or []
        ]

    assert cli.wait_for("the metrics endpoint", lambda: (ip, 9090) in endpoints(), timeout=30)


def test_sessions_namespace_is_created_and_enforces_restricted(cli: Cli, installed: None) -> None:
    labels = cli.get("namespace", SESSIONS)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --- the operator as the chart's identity ----------------------------------------------------------


@pytest.fixture(scope="module")
def chart_operator(
    cli: Cli, installed: None, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Operator, Path]]:
    """The operator process with a kubeconfig holding only a TokenRequest token of the chart's
    ServiceAccount. The shared operator of the other tests (admin rights) is stopped meanwhile, or it
    would reconcile the same sessions and hide a missing permission."""
    shared: Operator = request.getfixturevalue("operator")
    shared.stop()
    token = cli.kubectl(
        "create", "token", ACCOUNT, "-n", RELEASE_NAMESPACE, "--duration", "1h"
    ).stdout.strip()
    admin = yaml.safe_load(Path(cli.env["KUBECONFIG"]).read_text())
    cluster = admin["clusters"][0]["cluster"]
    kubeconfig = tmp_path_factory.mktemp("chart-identity") / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": cluster}],
                "users": [{"name": ACCOUNT, "user": {"token": token}}],
                "contexts": [{"name": "chart", "context": {"cluster": "local", "user": ACCOUNT}}],
                "current-context": "chart",
            }
        )
    )
    kubeconfig.chmod(0o600)
    env = {**shared.env, "KUBECONFIG": str(kubeconfig)}
    op = Operator(env, kubeconfig.parent / "operator.log")
    op.start()
    try:
        yield op, kubeconfig
    finally:
        op.stop()
        shared.start()


def as_operator(cli: Cli, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli.kubectl("--kubeconfig", str(kubeconfig), *args, check=False)


def test_operator_with_only_the_charts_rights_runs_sessions_end_to_end(
    cli: Cli, chart_operator: tuple[Operator, Path]
) -> None:
    """week21 (Kafka, the learner Role) and a vCluster unit (the syncer's Role, the widest one a
    component grants) go Ready and are removed on stop, with no request refused."""
    op, kubeconfig = chart_operator
    whoami = as_operator(cli, kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.stdout == OPERATOR_USER
    units = {
        "chartuser-week21": ["week21"],
        "chartuser-python-platform-phase17": ["phase17", "--course", "python-platform"],
    }

    def start(args: list[str]) -> subprocess.CompletedProcess[str]:
        return cli.labenv(
            "start", *args, "--learner", "chartuser", "-n", SESSIONS, "--wait", "--timeout", "300",
            check=False, timeout=360,
        )  # fmt: skip

    with ThreadPoolExecutor(len(units)) as pool:
        results = dict(zip(units, pool.map(start, units.values()), strict=True))
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stderr}\n--- operator log ---\n{op.tail()}"
        status = cli.get("labsession", name, "-n", SESSIONS)["status"]
        assert status["phase"] == "Ready", status
    assert cli.exists("role", "learner", "-n", "lab-chartuser-week21")
    assert cli.exists("role", "vc-vcluster", "-n", "lab-chartuser-python-platform-phase17")

    for name in units:
        cli.labenv("stop", name, "-n", SESSIONS, "--wait")
        assert not cli.exists("namespace", f"lab-{name}")
    log = op.log.read_text(errors="replace")
    assert " 403 " not in log, op.tail(200)
    assert "forbidden" not in log.lower(), op.tail(200)


def test_what_the_charts_identity_cannot_do(cli: Cli, chart_operator: tuple[Operator, Path]) -> None:
    _, kubeconfig = chart_operator
    # Positive controls: can-i does answer yes for what the operator does.
    assert can_i(cli, "patch", "labsessions.labenv.io", "-n", SESSIONS)
    assert can_i(cli, "delete", "namespaces")
    # RBAC: nothing cluster-wide beyond namespaces and reading CRDs, no way to widen its own rights.
    for args in (
        ["update", "nodes"],
        ["get", "nodes", "--subresource=proxy"],
        ["create", "persistentvolumes"],
        ["create", "clusterroles"],
        ["create", "clusterrolebindings"],
        ["escalate", "roles", "-n", "kube-system"],
        ["bind", "clusterroles"],
        ["impersonate", "users"],
        ["create", "serviceaccounts", "--subresource=token", "-n", "kube-system"],
        ["delete", "customresourcedefinitions.apiextensions.k8s.io"],
        ["create", "validatingadmissionpolicies.admissionregistration.k8s.io"],
        ["create", "certificatesigningrequests.certificates.k8s.io"],
    ):
        assert not can_i(cli, *args), f"the operator may {' '.join(args)}"

    # RBAC has to grant lab-namespace rights cluster-wide (the namespaces are created per session);
    # the admission policy refuses every write outside labenv's own lab namespaces.
    assert can_i(cli, "create", "secrets", "-n", "kube-system")  # RBAC alone would allow it
    refused = {
        "a Secret in kube-system": ["create", "secret", "generic", "x", "-n", "kube-system"],
        "relabelling a namespace it does not own": ["label", "namespace", "default", "x=y"],
        "a lab-* namespace not labelled as labenv's": ["create", "namespace", "lab-not-labenvs"],
        "exec into a pod outside the labs": [
            "exec", "-n", RELEASE_NAMESPACE, operator_pod(cli)["metadata"]["name"], "--", "true",
        ],
    }  # fmt: skip
    for what, args in refused.items():
        result = as_operator(cli, kubeconfig, *args)
        assert result.returncode != 0, f"{what} was allowed"
        assert f"ValidatingAdmissionPolicy '{POLICY}'" in result.stderr, f"{what}: {result.stderr}"
    # Reads are not confined (admission never sees them): the operator can read Secrets in every
    # namespace. This is the price of per-session namespaces; docs/admin.md says so.
    assert as_operator(cli, kubeconfig, "get", "secrets", "-n", "kube-system").returncode == 0


def test_peered_replicas_run_with_the_charts_rights(cli: Cli, chart_operator: tuple[Operator, Path]) -> None:
    """With peering.enabled the operator joins Kopf's peering (a heartbeat patched into the
    ClusterKopfPeering `labenv`) holding only the chart's rights, and may patch no other peering."""
    standalone, kubeconfig = chart_operator
    helm(cli, "upgrade", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, *INSTALL_VALUES, *PEERED, "--wait")
    assert cli.get("deployment", "labenv-operator", "-n", RELEASE_NAMESPACE)["spec"]["replicas"] == 2
    assert can_i(cli, "patch", "clusterkopfpeerings.kopf.dev/labenv")
    assert can_i(cli, "get", "clusterkopfpeerings.kopf.dev/labenv")  # the sweeper: am I active?
    assert not can_i(cli, "patch", "clusterkopfpeerings.kopf.dev/another-operator")

    def peers() -> set[str]:
        return set((cli.get("clusterkopfpeering", "labenv").get("status") or {}).keys())

    before = peers()
    standalone.stop()
    peer = Operator({**standalone.env, "LABENV_PEERING": "labenv"}, kubeconfig.parent / "peer.log")
    peer.start()
    try:
        assert cli.wait_for("the operator's heartbeat in the peering object", lambda: peers() - before, 60)
    finally:
        peer.stop()
        standalone.start()
    log = peer.log.read_text(errors="replace")
    assert " 403 " not in log, peer.tail(100)
    assert "forbidden" not in log.lower(), peer.tail(100)


def test_uninstall_keeps_crds_and_the_sessions_namespace(cli: Cli, installed: None) -> None:
    helm(cli, "uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait")
    assert not cli.exists("deployment", "labenv-operator", "-n", RELEASE_NAMESPACE)
    assert not cli.exists("clusterrole", "labenv-labs")
    assert not cli.exists("validatingadmissionpolicy", POLICY)
    assert cli.exists("crd", "labsessions.labenv.io")
    assert cli.exists("namespace", SESSIONS)
