"""`labenv start` to Ready, restart, stop and expiry on the real local control plane."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.integration.conftest import SESSIONS_NAMESPACE, Cli, Operator

pytestmark = pytest.mark.integration


def session(cli: Cli, name: str) -> dict[str, Any]:
    data: dict[str, Any] = cli.get("labsession", name, "-n", SESSIONS_NAMESPACE)
    return data


def secret_data(cli: Cli, namespace: str, name: str) -> dict[str, str]:
    raw = cli.get("secret", name, "-n", namespace)["data"]
    return {k: base64.b64decode(v).decode() for k, v in raw.items()}


@pytest.fixture(scope="module")
def week21(cli: Cli, operator: Operator) -> dict[str, Any]:
    result = cli.labenv(
        "start", "week21", "--learner", "ada", "--wait", "--timeout", "180", "--output", "json"
    )
    return dict(json.loads(result.stdout))


def test_start_reaches_ready_with_pods_running_on_fake_nodes(cli: Cli, week21: dict[str, Any]) -> None:
    status = week21["status"]
    assert status["phase"] == "Ready"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "KafkaReady": "True",
        "SchemaRegistryReady": "True",
        "WorkspaceReady": "True",
        "Ready": "True",
    }
    assert status["namespace"] == "lab-ada-week21"
    assert {
        "component": "kafka",
        "name": "bootstrap",
        "host": "kafka.lab-ada-week21.svc.cluster.local",
        "port": 9092,
        "url": "kafka://kafka.lab-ada-week21.svc.cluster.local:9092",
    } in status["endpoints"]
    pods = cli.get("pods", "-n", "lab-ada-week21")["items"]
    kafka = [p for p in pods if p["metadata"]["name"] == "kafka-0"]
    assert kafka
    assert kafka[0]["status"]["phase"] == "Running"
    node = cli.get("node", kafka[0]["spec"]["nodeName"])
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    claim = cli.get("pvc", "data-kafka-0", "-n", "lab-ada-week21")
    assert claim["status"]["phase"] == "Bound"


def test_published_settings_name_a_real_service_and_port(cli: Cli, week21: dict[str, Any]) -> None:
    exports = cli.labenv("creds", "ada-week21").stdout
    assert "export KAFKA_BOOTSTRAP_SERVERS=kafka.lab-ada-week21.svc.cluster.local:9092" in exports
    service = cli.get("service", "kafka", "-n", "lab-ada-week21")
    assert [p["port"] for p in service["spec"]["ports"]] == [9092]


def test_namespace_is_isolated_and_limited(cli: Cli, week21: dict[str, Any]) -> None:
    ns = cli.get("namespace", "lab-ada-week21")["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["labenv.io/session"] == "ada-week21"
    for kind, name in [
        ("resourcequota", "labenv-quota"),
        ("limitrange", "labenv-limits"),
        ("networkpolicy", "labenv-default-deny"),
        ("networkpolicy", "labenv-allow-namespace"),
        ("serviceaccount", "learner"),
        ("role", "learner"),
        ("rolebinding", "learner"),
    ]:
        assert cli.exists(kind, name, "-n", "lab-ada-week21"), f"{kind}/{name} missing"
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root", "namespace": "lab-ada-week21"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.37", "securityContext": {"privileged": True}}]
        },
    }
    refused = cli.kubectl("apply", "-f", "-", stdin=json.dumps(privileged), check=False)
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr


def test_metrics_and_events_tell_what_happened(cli: Cli, operator: Operator, week21: dict[str, Any]) -> None:
    text = operator.metrics()
    assert 'labenv_sessions{course="infra-36w",phase="Ready",unit="week21"}' in text
    assert 'labenv_session_provisioning_seconds_count{course="infra-36w",unit="week21"}' in text
    assert 'labenv_component_ready_seconds_count{component="kafka"}' in text
    events = cli.get("events", "-n", SESSIONS_NAMESPACE, "--field-selector", "involvedObject.name=ada-week21")
    reasons = {e["reason"] for e in events["items"]}
    assert {"Provisioning", "ComponentReady", "Ready"} <= reasons
    described = cli.kubectl("describe", "labsession", "ada-week21", "-n", SESSIONS_NAMESPACE).stdout
    assert "kafka is ready" in described


def test_second_start_returns_the_existing_session(cli: Cli, week21: dict[str, Any]) -> None:
    again = cli.labenv("start", "week21", "--learner", "ada", "--output", "json")
    assert json.loads(again.stdout)["metadata"]["uid"] == week21["metadata"]["uid"]


def test_a_deleted_workload_is_restored_and_its_volume_kept(cli: Cli, week21: dict[str, Any]) -> None:
    volume = cli.get("pvc", "data-kafka-0", "-n", "lab-ada-week21")["metadata"]["uid"]
    old = cli.get("statefulset", "kafka", "-n", "lab-ada-week21")["metadata"]["uid"]
    cli.kubectl("delete", "statefulset", "kafka", "-n", "lab-ada-week21", "--wait=false")

    def restored() -> bool:
        found = cli.kubectl("get", "statefulset", "kafka", "-n", "lab-ada-week21", "-o", "json", check=False)
        return found.returncode == 0 and json.loads(found.stdout)["metadata"]["uid"] != old

    cli.wait_for("the StatefulSet to be re-created", restored, timeout=60)
    cli.wait_for(
        "the session to be Ready again", lambda: session(cli, "ada-week21")["status"]["phase"] == "Ready"
    )
    assert cli.get("pvc", "data-kafka-0", "-n", "lab-ada-week21")["metadata"]["uid"] == volume


def test_credentials_survive_an_operator_kill_and_a_reconcile(
    cli: Cli, operator: Operator, week21: dict[str, Any]
) -> None:
    before = secret_data(cli, "lab-ada-week21", "labenv-generated")
    operator.kill()
    operator.start()
    cli.kubectl(
        "patch",
        "labsession",
        "ada-week21",
        "-n",
        SESSIONS_NAMESPACE,
        "--type=merge",
        "-p",
        '{"spec":{"ttl":"9h"}}',
    )
    generation = session(cli, "ada-week21")["metadata"]["generation"]
    cli.wait_for(
        "the change to be reconciled",
        lambda: session(cli, "ada-week21")["status"].get("observedGeneration") == generation,
    )
    assert secret_data(cli, "lab-ada-week21", "labenv-generated") == before
    assert session(cli, "ada-week21")["status"]["phase"] == "Ready"


def test_learner_identity_is_limited_to_its_namespace(
    cli: Cli, operator: Operator, week21: dict[str, Any]
) -> None:
    cli.labenv("start", "week5", "--learner", "bea", "--wait", "--timeout", "180")
    ada = "system:serviceaccount:lab-ada-week21:learner"

    def allowed(verb: str, resource: str, namespace: str, group: str = "") -> bool:
        attributes = {"verb": verb, "resource": resource, "namespace": namespace, "group": group}
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": ada,
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "resourceAttributes": attributes,
            },
        }
        out = cli.kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(review))
        return bool(json.loads(out.stdout)["status"]["allowed"])

    assert allowed("create", "pods", "lab-ada-week21")
    assert allowed("delete", "deployments", "lab-ada-week21", "apps")
    assert not allowed("update", "networkpolicies", "lab-ada-week21", "networking.k8s.io")
    assert not allowed("create", "rolebindings", "lab-ada-week21", "rbac.authorization.k8s.io")
    assert not allowed("get", "secrets", "lab-bea-week5")
    assert not allowed("list", "pods", "lab-bea-week5")
    assert not allowed("get", "secrets", "kube-system")
    cli.labenv("stop", "bea-week5", "--wait")


def test_stop_removes_the_namespace_and_everything_in_it(cli: Cli, operator: Operator) -> None:
    cli.labenv("start", "week5", "--learner", "cy", "--wait", "--timeout", "180")
    assert cli.exists("namespace", "lab-cy-week5")
    cli.labenv("stop", "week5", "--learner", "cy", "--wait")
    assert not cli.exists("labsession", "cy-week5", "-n", SESSIONS_NAMESPACE)
    assert not cli.exists("namespace", "lab-cy-week5")


def test_expired_session_is_deleted_with_its_namespace(cli: Cli, operator: Operator) -> None:
    cli.labenv("start", "week5", "--learner", "dee", "--ttl", "20s")
    cli.wait_for("the namespace to exist", lambda: cli.exists("namespace", "lab-dee-week5"), timeout=60)
    cli.wait_for(
        "expiry", lambda: not cli.exists("labsession", "dee-week5", "-n", SESSIONS_NAMESPACE), timeout=90
    )
    cli.wait_for("the namespace to go", lambda: not cli.exists("namespace", "lab-dee-week5"), timeout=90)


def test_session_deleted_while_the_operator_is_down_leaves_no_orphan(cli: Cli, operator: Operator) -> None:
    cli.labenv("start", "week5", "--learner", "eve", "--wait", "--timeout", "180")
    operator.kill()
    try:
        cli.kubectl(
            "delete", "labsession", "eve-week5", "-n", SESSIONS_NAMESPACE, "--wait=true", "--timeout=20s"
        )
        assert cli.exists("namespace", "lab-eve-week5")  # nobody removed it yet
    finally:
        operator.start()
    cli.wait_for(
        "the orphaned namespace to be removed",
        lambda: not cli.exists("namespace", "lab-eve-week5"),
        timeout=90,
    )
