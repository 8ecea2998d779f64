"""Chaos and convergence on the local control plane: kill -9 the operator again and again while a cohort
provisions, restart the API server and etcd under it, delete sessions mid-way; every time everything
converges with nothing lost, duplicated or orphaned, and `labenv doctor` agrees.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from labenv import doctor
from labenv.catalog.loader import default_catalog
from labenv.kube.client import Kube
from tests.integration.conftest import SESSIONS_NAMESPACE, Cli, Operator

pytestmark = pytest.mark.integration

SEED = 20_26_05
COHORT = 30
KILLS = 12
STARTED = "labenv operator started"
CHAOS_LABEL = "labenv.io/chaos-test"


def labenv_doctor(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    return cli.labenv("doctor", *args, check=False)


def doctor_finds_nothing(cli: Cli) -> None:
    result = labenv_doctor(cli, "-o", "json")
    assert result.returncode == 0, f"labenv doctor: {result.stdout}{result.stderr}"
    report = json.loads(result.stdout)
    assert report["orphans"] == []


def session_body(learner: str, unit: str, ttl: str = "8h", group: str = "cohort") -> dict[str, Any]:
    return {
        "apiVersion": "labenv.io/v1alpha1",
        "kind": "LabSession",
        "metadata": {
            "name": f"{learner}-{unit}",
            "namespace": SESSIONS_NAMESPACE,
            "labels": {CHAOS_LABEL: group},
        },
        "spec": {"learner": learner, "course": "infra-36w", "unit": unit, "ttl": ttl},
    }


def apply_sessions(cli: Cli, bodies: list[dict[str, Any]]) -> None:
    cli.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": bodies}))


def sessions(cli: Cli, group: str) -> dict[str, dict[str, Any]]:
    found = cli.get("labsessions", "-n", SESSIONS_NAMESPACE, "-l", f"{CHAOS_LABEL}={group}")["items"]
    return {s["metadata"]["name"]: s for s in found}


def phase(s: dict[str, Any]) -> str:
    return str((s.get("status") or {}).get("phase", "Pending"))


def wait_all_ready(cli: Cli, group: str, count: int, timeout: float) -> dict[str, dict[str, Any]]:
    def ready() -> dict[str, dict[str, Any]] | None:
        found = sessions(cli, group)
        return found if len(found) == count and all(phase(s) == "Ready" for s in found.values()) else None

    try:
        result: dict[str, dict[str, Any]] = cli.wait_for(
            f"all {count} sessions Ready", ready, timeout, interval=2
        )
    except AssertionError as exc:  # say which sessions are stuck, and where
        stuck = {
            name: {
                "generation": s["metadata"].get("generation"),
                **{k: v for k, v in (s.get("status") or {}).items() if k not in ("endpoints", "components")},
            }
            for name, s in sessions(cli, group).items()
            if phase(s) != "Ready"
        }
        raise AssertionError(f"{exc}; not Ready: {json.dumps(stuck, indent=1)}") from None
    return result


def lab_namespaces(cli: Cli) -> dict[str, dict[str, Any]]:
    found = cli.get("namespaces", "-l", "app.kubernetes.io/managed-by=labenv")["items"]
    return {ns["metadata"]["name"]: ns for ns in found}


def starts(operator: Operator) -> int:
    """How many times the operator has logged that it is up (the log spans every restart)."""
    return operator.log.read_text(errors="replace").count(STARTED)


def wait_until_started(operator: Operator, starts_wanted: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if starts(operator) >= starts_wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"the operator did not start within {timeout:.0f}s:\n{operator.tail()}")


@dataclass
class Recorder:
    """Polls generated credentials, lab namespaces and volume claims; keeps what it saw first, and every
    later observation that differs (a rotated password, a recreated namespace or claim)."""

    cli: Cli
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)
    claims: dict[str, str] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _get(self, *args: str) -> list[dict[str, Any]]:
        try:
            result = self.cli.kubectl("get", "-o", "json", *args, check=False)
        except subprocess.TimeoutExpired:
            return []
        return list(json.loads(result.stdout)["items"]) if result.returncode == 0 else []

    def poll(self) -> None:
        managed = "app.kubernetes.io/managed-by=labenv"
        for secret in self._get("secrets", "-A", "-l", f"{managed},app.kubernetes.io/component=credentials"):
            meta = secret["metadata"]
            if meta["name"] != "labenv-generated":
                continue
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            first = self.credentials.setdefault(meta["namespace"], data)
            rotated = sorted(k for k in first if data.get(k) != first[k])
            if rotated:
                self.changes.append(f"{meta['namespace']}: credentials {rotated} changed")
        for ns in self._get("namespaces", "-l", managed):
            meta = ns["metadata"]
            if self.namespaces.setdefault(meta["name"], meta["uid"]) != meta["uid"]:
                self.changes.append(f"namespace {meta['name']} was recreated")
        for claim in self._get("pvc", "-A", "-l", managed):
            meta = claim["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            if self.claims.setdefault(key, meta["uid"]) != meta["uid"]:
                self.changes.append(f"claim {key} was recreated")
        self.polls += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(0.3)

    def __enter__(self) -> Recorder:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)
        self.poll()  # one last look, after everything settled


def expected_workloads(unit: str) -> set[tuple[str, str]]:
    catalog = default_catalog()
    resolved = catalog.resolve(unit, catalog.default_course)
    return {(r.kind, r.name) for c in resolved.components for r in c.readiness}


def inventory_problems(cli: Cli, namespace: str, unit: str) -> list[str]:
    """What is duplicated, missing or extra among the lab's workloads."""
    problems = []
    listed = cli.get("statefulsets,deployments,jobs", "-n", namespace)["items"]
    workloads = {(item["kind"], item["metadata"]["name"]): item for item in listed}
    if set(workloads) != expected_workloads(unit):
        problems.append(f"{namespace}: workloads {sorted(set(workloads) ^ expected_workloads(unit))} differ")
    replicasets = cli.get("replicasets", "-n", namespace)["items"]
    for (kind, name), _ in workloads.items():
        if kind != "Deployment":
            continue
        owned = [
            rs
            for rs in replicasets
            if any(o["name"] == name for o in rs["metadata"].get("ownerReferences", []))
        ]
        if len(owned) != 1:
            problems.append(f"{namespace}: Deployment {name} has {len(owned)} ReplicaSets (template churn)")
    want = sum(int(item["spec"].get("replicas", 1)) for (kind, _), item in workloads.items() if kind != "Job")
    pods = [
        p
        for p in cli.get("pods", "-n", namespace)["items"]
        if not p["metadata"].get("deletionTimestamp")
        and any(o["kind"] in ("ReplicaSet", "StatefulSet") for o in p["metadata"].get("ownerReferences", []))
    ]
    if len(pods) != want:
        problems.append(f"{namespace}: {len(pods)} workload pods, expected {want}")
    return problems


@pytest.fixture(scope="module", autouse=True)
def _clean_up_chaos_sessions(cli: Cli) -> Iterator[None]:
    yield
    cli.kubectl(
        "delete", "labsessions", "-n", SESSIONS_NAMESPACE, "-l", CHAOS_LABEL, "--wait=false", check=False
    )


# --- kill -9 while a cohort provisions ------------------------------------------------------------


def test_operator_killed_repeatedly_while_a_cohort_provisions(cli: Cli, operator: Operator) -> None:
    rng = random.Random(SEED)
    bodies = [session_body(f"chaos{i}", "week5" if i % 2 == 0 else "week21") for i in range(COHORT)]
    units = {b["metadata"]["name"]: b["spec"]["unit"] for b in bodies}
    provisioning_at_kill: list[int] = []
    with Recorder(cli) as recorder:
        wanted = max(starts(operator), 1)  # the running operator: up once its start is logged
        began = time.monotonic()
        # A third of the cohort arrives with each of the first three kills, so every kill lands while
        # sessions are still being provisioned.
        waves = [bodies[i::3] for i in range(3)]
        for kill in range(KILLS):
            wait_until_started(operator, wanted)
            if waves:
                apply_sessions(cli, waves.pop(0))
            time.sleep(rng.uniform(0.2, 2.0))
            wanted = starts(operator) + 1
            operator.kill()
            operator.start()
            provisioning_at_kill.append(sum(phase(s) != "Ready" for s in sessions(cli, "cohort").values()))
            print(
                f"kill {kill + 1} at {time.monotonic() - began:.0f}s: {provisioning_at_kill[-1]} sessions "
                f"not Ready; {len(recorder.namespaces)} namespaces, {len(recorder.credentials)} "
                "credential Secrets so far"
            )
        final = wait_all_ready(cli, "cohort", COHORT, timeout=300)

    print(f"\n{KILLS} kills survived, {len(final)} sessions converged")
    assert sum(1 for n in provisioning_at_kill if n > 0) >= 10, provisioning_at_kill
    namespaces = lab_namespaces(cli)
    for name, s in final.items():
        lab = f"lab-{name}"
        assert lab in namespaces, f"{name} has no namespace"
        assert namespaces[lab]["metadata"]["labels"]["labenv.io/session-uid"] == s["metadata"]["uid"]
        assert lab in recorder.credentials, f"{name}: its generated Secret was never seen"
        assert recorder.credentials[lab], f"{name}: its generated Secret is empty"
    owners = [ns["metadata"]["labels"].get("labenv.io/session") for ns in namespaces.values()]
    assert sorted(o for o in owners if o in final) == sorted(final), "a session with more than one namespace"
    assert recorder.changes == []
    problems = [p for name, unit in units.items() for p in inventory_problems(cli, f"lab-{name}", unit)]
    assert problems == []
    doctor_finds_nothing(cli)


# --- the API server and etcd restart under the operator -------------------------------------------


def test_operator_recovers_from_an_api_server_and_etcd_restart(
    cli: Cli, operator: Operator, local_cluster: Any
) -> None:
    assert operator.process is not None
    pid = operator.process.pid
    bodies = [session_body(f"apir{i}", "week5" if i % 2 else "week21", group="restart") for i in range(6)]
    with Recorder(cli) as recorder:
        apply_sessions(cli, bodies)
        cli.wait_for(
            "provisioning to be under way",
            lambda: sum(f"lab-{b['metadata']['name']}" in lab_namespaces(cli) for b in bodies) >= 2,
            timeout=60,
            interval=0.2,
        )
        local_cluster.restart("kube-apiserver", "etcd")
        final = wait_all_ready(cli, "restart", len(bodies), timeout=240)
    assert operator.process.poll() is None, "the operator died with the API server"
    assert operator.process.pid == pid, "the operator was restarted"
    assert recorder.changes == []
    for name, s in final.items():
        assert (
            lab_namespaces(cli)[f"lab-{name}"]["metadata"]["labels"]["labenv.io/session-uid"]
            == s["metadata"]["uid"]
        )
        assert inventory_problems(cli, f"lab-{name}", s["spec"]["unit"]) == []

    # Its watches are alive: a session made now is provisioned...
    apply_sessions(cli, [session_body("apir-late", "week5", group="restart-late")])
    wait_all_ready(cli, "restart-late", 1, timeout=120)
    # ...and its sweeper is too: an expiring session goes, with its namespace.
    apply_sessions(cli, [session_body("apir-exp", "week5", ttl="15s", group="restart-exp")])
    cli.wait_for("the namespace of the expiring session", lambda: "lab-apir-exp-week5" in lab_namespaces(cli))
    cli.wait_for("expiry", lambda: not sessions(cli, "restart-exp"), timeout=90)
    cli.wait_for("its namespace to go", lambda: "lab-apir-exp-week5" not in lab_namespaces(cli), timeout=90)
    doctor_finds_nothing(cli)


# --- sessions deleted while they provision --------------------------------------------------------


def test_sessions_deleted_while_provisioning_leave_nothing(cli: Cli, operator: Operator) -> None:
    bodies = [session_body(f"gone{i}", "week21" if i % 2 else "week5", group="gone") for i in range(10)]
    names = {b["metadata"]["name"] for b in bodies}
    apply_sessions(cli, bodies)
    cli.wait_for(
        "provisioning to be under way",
        lambda: sum(f"lab-{n}" in lab_namespaces(cli) for n in names) >= 3,
        timeout=60,
        interval=0.2,
    )
    first, second = sorted(names)[:5], sorted(names)[5:]
    cli.kubectl("delete", "labsession", "-n", SESSIONS_NAMESPACE, "--wait=false", *first)
    operator.kill()  # the rest go while the operator is down, mid-way through its work
    try:
        cli.kubectl("delete", "labsession", "-n", SESSIONS_NAMESPACE, "--wait=false", *second)
    finally:
        operator.start()

    def leftovers() -> list[str]:
        return sorted(n for n in lab_namespaces(cli) if n.removeprefix("lab-") in names)

    cli.wait_for("every namespace to be gone", lambda: not leftovers(), timeout=180, interval=1)
    assert sessions(cli, "gone") == {}
    doctor_finds_nothing(cli)


# --- labenv doctor --------------------------------------------------------------------------------


def test_doctor_lists_orphans_and_fix_removes_them(cli: Cli, operator: Operator) -> None:
    live = sessions(cli, "cohort")
    assert live, "needs the cohort of the first test"
    operator.stop()  # its sweeper would remove the orphan namespace before the doctor sees it
    try:
        ghost_uid = str(uuid.uuid4())
        managed = {"app.kubernetes.io/managed-by": "labenv"}
        orphan_namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": "lab-ghost-week5",
                "labels": {**managed, "labenv.io/session": "ghost-week5", "labenv.io/session-uid": ghost_uid},
            },
        }

        def secret(name: str, session: str) -> dict[str, Any]:
            labels = {
                **managed,
                "labenv.io/session": session,
                "labenv.io/session-namespace": SESSIONS_NAMESPACE,
            }
            return {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": SESSIONS_NAMESPACE, "labels": labels},
                "stringData": {"token": "x"},
            }

        kept = secret("chaos-kept", next(iter(live)))  # belongs to a live session: not an orphan
        items = [orphan_namespace, secret("ghost-cloud-credentials", "ghost-week5"), kept]
        cli.kubectl(
            "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        )

        found = labenv_doctor(cli, "-o", "json")
        assert found.returncode == 1, found.stderr
        orphans = {(o["kind"], o["namespace"], o["name"]) for o in json.loads(found.stdout)["orphans"]}
        assert orphans == {
            ("Namespace", None, "lab-ghost-week5"),
            ("Secret", SESSIONS_NAMESPACE, "ghost-cloud-credentials"),
        }
        table = labenv_doctor(cli)
        assert table.returncode == 1
        assert "lab-ghost-week5" in table.stdout
        assert "labenv doctor --fix" in table.stdout

        fixed = labenv_doctor(cli, "--fix", "-o", "json")
        assert fixed.returncode == 0, fixed.stderr
        assert len(json.loads(fixed.stdout)["removed"]) == 2
        assert not cli.exists("secret", "ghost-cloud-credentials", "-n", SESSIONS_NAMESPACE)
        assert cli.exists("secret", "chaos-kept", "-n", SESSIONS_NAMESPACE)
        doctor_finds_nothing(cli)  # a namespace being deleted is no longer an orphan
        cli.wait_for("the orphan namespace to go", lambda: not cli.exists("namespace", "lab-ghost-week5"))
    finally:
        cli.kubectl("delete", "secret", "chaos-kept", "-n", SESSIONS_NAMESPACE, check=False)
        operator.start()


@dataclass
class FakeStacks:
    """A cloud integration's stacks, as the cloud work will register them."""

    provider: str
    made: list[doctor.CloudStack]
    deleted: list[str] = field(default_factory=list)

    async def stacks(self) -> list[doctor.CloudStack]:
        return [s for s in self.made if s.name not in self.deleted]

    async def delete(self, stack: doctor.CloudStack) -> None:
        self.deleted.append(stack.name)


def test_doctor_reports_cloud_stacks_whose_session_is_gone(cli: Cli, local_cluster: Any) -> None:
    live = next(iter(sessions(cli, "cohort").values()))
    source = FakeStacks(
        "aws",
        [
            doctor.CloudStack("aws", "sandbox-live", live["metadata"]["uid"], live["metadata"]["name"]),
            doctor.CloudStack("aws", "sandbox-ghost", str(uuid.uuid4()), "labenv/ghost-week5"),
        ],
    )

    async def go() -> tuple[list[str], list[str]]:
        async with await Kube.connect(str(local_cluster.kubeconfig)) as kube:
            report = await doctor.audit(kube, [source])
            await doctor.fix(kube, report, [source])
            after = await doctor.audit(kube, [source])
            return [o.name for o in report.orphans if o.kind == "CloudStack"], [o.name for o in after.orphans]

    found, after = asyncio.run(go())
    assert found == ["sandbox-ghost"]
    assert source.deleted == ["sandbox-ghost"]
    assert after == []
