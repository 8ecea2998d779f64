"""What a user of `labenv cluster` relies on, checked against the real local control plane."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from labenv.cli.cluster import cluster_app
from labenv.localcluster import LocalCluster

pytestmark = pytest.mark.integration

WAIT = "--timeout=90s"


@dataclass(frozen=True)
class Kubectl:
    cluster: LocalCluster
    namespace: str

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.cluster.kubectl), "--namespace", self.namespace, *args],
            input=stdin,
            env=self.cluster.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def apply(self, manifest: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", stdin=manifest, check=check)

    def jsonpath(self, resource: str, path: str) -> str:
        return self.run("get", resource, "-o", f"jsonpath={path}").stdout


@pytest.fixture
def kubectl(local_cluster: LocalCluster) -> Iterator[Kubectl]:
    """kubectl bound to a fresh namespace, deleted afterwards."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    k = Kubectl(local_cluster, namespace)
    k.run("create", "namespace", namespace)
    yield k
    k.run("delete", "namespace", namespace, "--wait=false")


def test_up_again_returns_at_once_and_keeps_the_processes(local_cluster: LocalCluster) -> None:
    before = local_cluster.status()
    started = time.monotonic()

    after = LocalCluster(local_cluster.name).up()

    assert time.monotonic() - started < 5
    assert [p.pid for p in after.processes] == [p.pid for p in before.processes]
    assert after.healthy


def test_status_json_reports_a_healthy_cluster(local_cluster: LocalCluster) -> None:
    result = CliRunner().invoke(cluster_app, ["status", "--name", local_cluster.name, "--output", "json"])

    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["healthy"] is True
    assert status["api_ready"] is True
    assert [p["name"] for p in status["processes"] if p["alive"]] == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ]
    assert [(n["name"], n["ready"]) for n in status["nodes"]] == [
        ("kwok-node-0", True),
        ("kwok-node-1", True),
    ]
    assert status["kubeconfig"] == str(local_cluster.kubeconfig)


def test_kubectl_matches_the_server_version(kubectl: Kubectl) -> None:
    version = json.loads(kubectl.run("version", "--output=json").stdout)

    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"] == "v1.36.3"


def test_deployment_pods_become_ready_on_kwok_nodes(kubectl: Kubectl) -> None:
    kubectl.run("create", "deployment", "web", "--image=nginx", "--replicas=3")

    kubectl.run("rollout", "status", "deployment/web", WAIT)

    nodes = kubectl.jsonpath("pods", "{.items[*].spec.nodeName}").split()
    assert len(nodes) == 3
    assert all(n.startswith("kwok-node-") for n in nodes)


def test_statefulset_claim_is_bound_and_pod_ready(kubectl: Kubectl) -> None:
    kubectl.apply(
        """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""
    )

    kubectl.run("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data-db-0", WAIT)
    kubectl.run("wait", "--for=condition=Ready", "pod/db-0", WAIT)
    assert kubectl.jsonpath("pvc/data-db-0", "{.spec.storageClassName}") == "standard"


def test_job_completes(kubectl: Kubectl) -> None:
    kubectl.run("create", "job", "once", "--image=busybox")

    kubectl.run("wait", "--for=condition=Complete", "job/once", WAIT)


def test_privileged_pod_is_rejected_in_a_restricted_namespace(kubectl: Kubectl) -> None:
    kubectl.run("label", "namespace", kubectl.namespace, "pod-security.kubernetes.io/enforce=restricted")

    done = kubectl.apply(
        """
apiVersion: v1
kind: Pod
metadata: {name: root}
spec:
  containers: [{name: c, image: busybox, securityContext: {privileged: true}}]
""",
        check=False,
    )

    assert done.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in done.stderr


def test_rbac_forbids_anonymous_and_unbound_users(kubectl: Kubectl, local_cluster: LocalCluster) -> None:
    for user in ("system:anonymous", "jane"):
        done = kubectl.run("get", "pods", f"--as={user}", check=False)
        assert done.returncode != 0
        assert f'User "{user}" cannot list resource "pods"' in done.stderr

    # A request with no credentials at all: authenticated as system:anonymous, then denied by RBAC.
    server = local_cluster.status().server
    context = ssl.create_default_context(cafile=str(local_cluster.state_dir / "pki" / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{server}/api/v1/namespaces/{kubectl.namespace}/pods", context=context)
    assert denied.value.code == 403


def test_service_account_tokens_can_be_requested(kubectl: Kubectl, local_cluster: LocalCluster) -> None:
    kubectl.run("create", "serviceaccount", "robot")

    token = kubectl.run("create", "token", "robot", "--duration=10m").stdout.strip()
    # Only the token: with the admin kubeconfig the client certificate would authenticate first.
    whoami = kubectl.run(
        "auth",
        "whoami",
        "--kubeconfig=/dev/null",
        f"--server={local_cluster.status().server}",
        f"--certificate-authority={local_cluster.state_dir / 'pki' / 'ca.crt'}",
        f"--token={token}",
        "--output=jsonpath={.status.userInfo.username}",
    )

    assert whoami.stdout == f"system:serviceaccount:{kubectl.namespace}:robot"


def test_up_restarts_dead_components_and_down_stops_everything(local_cluster: LocalCluster) -> None:
    cluster = LocalCluster("labenv-test-down", nodes=1)
    try:
        first = cluster.up()
        scheduler = next(p for p in first.processes if p.name == "kube-scheduler")
        assert scheduler.pid is not None
        os.kill(scheduler.pid, signal.SIGKILL)

        second = cluster.up()

        restarted = next(p for p in second.processes if p.name == "kube-scheduler")
        assert second.healthy
        assert restarted.alive
        assert restarted.pid != scheduler.pid

        cluster.down()
        cluster.down()  # nothing left to stop is fine

        stopped = cluster.status()
        assert not any(p.alive for p in stopped.processes)
        assert not stopped.api_ready
        assert second.server is not None
        port = int(second.server.rsplit(":", 1)[1])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        assert local_cluster.status().healthy  # the other cluster was left alone
    finally:
        cluster.down(purge=True)
    assert not cluster.state_dir.exists()
