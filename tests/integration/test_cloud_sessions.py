"""Sessions with a cloud stack on the local control plane: the operator runs the real Pulumi programs
under mocks (`runner: mock`, file backend in a temporary directory), in its own process.

The mock runner's directory is shared with this test: the stacks are files there, every `up` and
`destroy` is appended to `journal.jsonl` with its start and end, and files named `fail-destroy` /
`<stack>.fail-destroy` / `delay-destroy` make the operator's destroys fail or take longer
(`labenv.cloud.runner`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from labenv import api, doctor
from labenv.catalog.loader import default_catalog
from labenv.cloud.examples import example_settings
from labenv.cloud.lifecycle import FINALIZER, FINGERPRINT_ANNOTATION, SessionKey, SessionOwner, ensure_stacks
from labenv.cloud.runner import MockStackRunner
from labenv.controller.cloud import doctor_sources
from labenv.kube.client import Kube
from labenv.reconcile import cloud
from tests.integration.conftest import SESSIONS_NAMESPACE, Cli, Operator

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PHASE13 = "ada-python-platform-phase13"


class Stacks:
    """The mock runner's directory, as the operator writes it."""

    def __init__(self, config: Path, root: Path) -> None:
        self.config = config
        self.root = root

    def exists(self, session: str) -> bool:
        return (self.root / f"session.{SESSIONS_NAMESPACE}.{session}.json").exists()

    def record(self, session: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.root / f"session.{SESSIONS_NAMESPACE}.{session}.json").read_text()
        )
        return data

    def journal(self, session: str) -> list[dict[str, Any]]:
        path = self.root / "journal.jsonl"
        entries = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [e for e in entries if e["stack"] == f"session.{SESSIONS_NAMESPACE}.{session}"]

    def hook(self, name: str, text: str | None) -> None:
        path = self.root / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)


@pytest.fixture(scope="module")
def stacks(cli: Cli, operator: Operator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    """The shared operator, restarted with cloud settings (mock runner) for this module, then without."""
    root = tmp_path_factory.mktemp("cloud")
    settings = example_settings().model_dump(mode="json")
    settings["backend_url"] = f"file://{root}/pulumi"
    config = root / "cloud.yaml"
    config.write_text(yaml.safe_dump(settings))
    found = Stacks(config, root / "pulumi" / "mock-stacks")
    saved = dict(operator.env)
    operator.stop()
    operator.env = {**saved, "LABENV_CLOUD_CONFIG": str(config), "LABENV_CLOUD_RETRY_BASE": "1"}
    operator.start()
    try:
        yield found
    finally:
        for hook in ("fail-destroy", "delay-destroy"):
            found.hook(hook, None)
        for hook in found.root.glob("*.fail-destroy") if found.root.exists() else ():
            hook.unlink()
        left = [
            s["metadata"]["name"]
            for s in cli.get("labsessions", "-n", SESSIONS_NAMESPACE)["items"]
            if FINALIZER in (s["metadata"].get("finalizers") or [])
        ]
        for name in left:  # while the operator can still destroy their stacks
            cli.labenv("stop", name, "--wait", check=False)
        operator.stop()
        operator.env = saved
        operator.start()


def session(cli: Cli, name: str) -> dict[str, Any]:
    data: dict[str, Any] = cli.get("labsession", name, "-n", SESSIONS_NAMESPACE)
    return data


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def secret_data(cli: Cli, namespace: str, name: str) -> dict[str, str]:
    raw = cli.get("secret", name, "-n", namespace)["data"]
    return {k: base64.b64decode(v).decode() for k, v in raw.items()}


def namespace_phase(cli: Cli, name: str) -> str | None:
    found = cli.kubectl("get", "namespace", name, "-o", "jsonpath={.status.phase}", check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def start(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli.labenv("start", *args, "--wait", "--timeout", "240", "--output", "json")
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def phase13(cli: Cli, stacks: Stacks) -> dict[str, Any]:
    return start(cli, "phase13", "--course", "python-platform", "--learner", "ada", "--variant", "aws")


def test_variant_aws_session_is_ready_with_managed_postgres_and_object_store(
    cli: Cli, operator: Operator, stacks: Stacks, phase13: dict[str, Any]
) -> None:
    status = phase13["status"]
    assert status["phase"] == "Ready", status
    found = conditions(phase13)
    assert {t: c["status"] for t, c in found.items()} == {
        "PostgresReady": "True",
        "RedisReady": "True",
        "MongodbReady": "True",
        "OpensearchReady": "True",
        "ObjectStoreReady": "True",
        "WorkspaceReady": "True",
        "CloudStackReady": "True",
        "Ready": "True",
    }
    assert found["PostgresReady"]["message"].startswith("managed in aws by the session's cloud stack")
    assert phase13["spec"]["variant"] == "aws"
    meta = session(cli, PHASE13)["metadata"]
    assert FINALIZER in meta["finalizers"] and meta["annotations"][FINGERPRINT_ANNOTATION]

    lab = f"lab-{PHASE13}"
    statefulsets = {s["metadata"]["name"] for s in cli.get("statefulsets", "-n", lab)["items"]}
    assert "redis" in statefulsets
    assert not {"postgres", "object-store"} & statefulsets  # replaced, not rendered
    assert not cli.exists("service", "postgres", "-n", lab)
    assert cli.exists("networkpolicy", cloud.EGRESS_POLICY, "-n", lab)

    record = stacks.record(PHASE13)
    resources = dict((token, count) for token, count in record["resources"])
    assert resources["aws:rds/instance:Instance"] == 1
    settings = secret_data(cli, lab, "labenv-connection")
    generated = secret_data(cli, lab, "labenv-generated")
    assert settings["DATABASE_URL"] == record["outputs"]["DATABASE_URL"]
    assert (
        ".rds.amazonaws.com:5432/" in settings["DATABASE_URL"]
        and "sslmode=require" in settings["DATABASE_URL"]
    )
    assert settings["PGPASSWORD"] == generated["postgres-password"]  # the session's own credential
    assert settings["S3_BUCKET_DATALAKE"].endswith("-datalake")
    assert settings["CLOUD_AWS_ACCESS_KEY_ID"].startswith("AKIA")  # the sandbox (dynamodb), prefixed
    assert settings["REDIS_URL"].startswith("redis://")  # in-namespace settings are still there
    exports = cli.labenv("creds", PHASE13).stdout.splitlines()
    assert f"export DATABASE_URL={shlex.quote(settings['DATABASE_URL'])}" in exports


def test_a_reconcile_with_nothing_changed_runs_no_up(
    cli: Cli, operator: Operator, stacks: Stacks, phase13: dict[str, Any]
) -> None:
    ups = len([e for e in stacks.journal(PHASE13) if e["op"] == "up"])
    assert ups == 1
    # A new process (resume converges every session) and a reset (converges this one): the
    # fingerprint on the session and on the connection Secret say the stack is current.
    operator.restart()
    cli.kubectl(
        "annotate", "labsession", PHASE13, "-n", SESSIONS_NAMESPACE, "labenv.io/reset=mongodb", "--overwrite"
    )
    cli.wait_for(
        "the reset to finish",
        lambda: "labenv.io/reset" not in (session(cli, PHASE13)["metadata"].get("annotations") or {}),
        timeout=90,
    )
    assert len([e for e in stacks.journal(PHASE13) if e["op"] == "up"]) == ups
    assert conditions(session(cli, PHASE13))["CloudStackReady"]["status"] == "True"
    # the reconciler's own apply of the Secret (another field manager) left the stack's keys alone
    settings = secret_data(cli, f"lab-{PHASE13}", "labenv-connection")
    assert settings["DATABASE_URL"] == stacks.record(PHASE13)["outputs"]["DATABASE_URL"]


def test_sessions_without_cloud_needs_get_no_finalizer_and_no_stack(
    cli: Cli, operator: Operator, stacks: Stacks
) -> None:
    started = start(cli, "week5", "--learner", "cara")
    assert started["status"]["phase"] == "Ready"
    assert "CloudStackReady" not in conditions(started)
    assert not started["metadata"].get("finalizers")
    assert not stacks.exists("cara-week5")
    assert cli.exists("statefulset", "postgres", "-n", "lab-cara-week5")  # postgres in the namespace
    cli.labenv("stop", "cara-week5", "--wait")


def test_a_sandbox_unit_gets_the_sandbox_keys_and_deleting_it_destroys_the_stack_first(
    cli: Cli, operator: Operator, stacks: Stacks
) -> None:
    started = start(cli, "week17", "--learner", "ada")
    assert started["status"]["phase"] == "Ready"
    assert conditions(started)["CloudStackReady"]["reason"] == "StackUpToDate"
    exports = secret_data(cli, "lab-ada-week17", "labenv-connection")
    assert exports["AWS_ACCESS_KEY_ID"].startswith("AKIA") and exports["AWS_REGION"] == "eu-west-1"
    assert exports["TF_STATE_BUCKET"].endswith("-tfstate")
    assert stacks.exists("ada-week17")

    stacks.hook("delay-destroy", "4")  # a destroy that takes a while, as a real one does
    try:
        cli.kubectl("delete", "labsession", "ada-week17", "-n", SESSIONS_NAMESPACE, "--wait=false")
        seen: list[tuple[float, str | None, bool, str]] = []  # (time, namespace phase, stack, session phase)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            obj = cli.kubectl(
                "get", "labsession", "ada-week17", "-n", SESSIONS_NAMESPACE, "-o", "json", check=False
            )
            phase = json.loads(obj.stdout)["status"]["phase"] if obj.returncode == 0 else "gone"
            ns = namespace_phase(cli, "lab-ada-week17")
            seen.append((time.time(), ns, stacks.exists("ada-week17"), phase))
            if ns is None and phase == "gone":
                break
            time.sleep(0.2)
    finally:
        stacks.hook("delay-destroy", None)
    [destroy] = [e for e in stacks.journal("ada-week17") if e["op"] == "destroy"]
    assert not destroy["error"]
    during = [s for s in seen if destroy["start"] < s[0] < destroy["end"]]
    assert during, "no observation while the destroy ran"
    assert all(ns == "Active" and stack for _, ns, stack, _ in during)
    assert any(phase == "Terminating" for *_, phase in during)  # the session says what it is doing
    # the namespace was still Active whenever looked at before the destroy had ended
    assert all(ns == "Active" for t, ns, _, _ in seen if t < destroy["end"])
    assert seen[-1][1:] == (None, False, "gone")


def test_a_failed_destroy_keeps_the_finalizer_and_is_retried_until_it_succeeds(
    cli: Cli, operator: Operator, stacks: Stacks
) -> None:
    start(cli, "week17", "--learner", "bob")
    stack = f"session.{SESSIONS_NAMESPACE}.bob-week17"
    stacks.hook(f"{stack}.fail-destroy", "DeleteConflict: a budget action attached a policy")
    cli.kubectl("delete", "labsession", "bob-week17", "-n", SESSIONS_NAMESPACE, "--wait=false")

    def failed() -> dict[str, Any] | None:
        found = conditions(session(cli, "bob-week17")).get("CloudStackDestroyFailed")
        return found if found and found["status"] == "True" else None

    condition = cli.wait_for("CloudStackDestroyFailed", failed, timeout=60)
    assert condition["reason"] == "DestroyFailed"
    assert "DeleteConflict: a budget action attached a policy" in condition["message"]
    held = session(cli, "bob-week17")
    assert FINALIZER in held["metadata"]["finalizers"] and held["status"]["phase"] == "Terminating"
    assert stacks.exists("bob-week17") and namespace_phase(cli, "lab-bob-week17") == "Active"
    cli.wait_for(
        "the destroy to be retried",
        lambda: len([e for e in stacks.journal("bob-week17") if e["op"] == "destroy"]) >= 3,
        timeout=30,
    )
    events = cli.get("events", "-n", SESSIONS_NAMESPACE, "--field-selector", "involvedObject.name=bob-week17")
    assert "CloudStackDestroyFailed" in {e["reason"] for e in events["items"]}

    def destroys() -> int:
        return len([e for e in stacks.journal("bob-week17") if e["op"] == "destroy"])

    before = destroys()
    operator.restart()  # the retry is not lost with the process: the finalizer holds the session
    cli.wait_for("the restarted operator to try again", lambda: destroys() > before, timeout=60)
    held = session(cli, "bob-week17")
    assert (
        FINALIZER in held["metadata"]["finalizers"]
        and conditions(held)["CloudStackDestroyFailed"]["status"] == "True"
    )
    stacks.hook(f"{stack}.fail-destroy", None)
    cli.wait_for(
        "the session to go",
        lambda: not cli.exists("labsession", "bob-week17", "-n", SESSIONS_NAMESPACE),
        timeout=90,
    )
    cli.wait_for("the namespace to go", lambda: not cli.exists("namespace", "lab-bob-week17"), timeout=90)
    assert not stacks.exists("bob-week17")
    journal = [e for e in stacks.journal("bob-week17") if e["op"] == "destroy"]
    assert journal[-1]["error"] == "" and all(e["error"] for e in journal[:-1])


def test_doctor_lists_the_stacks_whose_session_is_gone(
    cli: Cli, local_cluster: Any, stacks: Stacks, phase13: dict[str, Any]
) -> None:
    ghost = SessionKey(namespace=SESSIONS_NAMESPACE, name="ghost-week17")
    runner = MockStackRunner(stacks.root)  # this process, the operator's backend
    spec = api.SessionSpec(learner="ghost", course="infra-36w", unit="week17")
    plan = cloud.plan(default_catalog().resolve("week17", "infra-36w"), spec)
    assert plan is not None
    owner = SessionOwner(learner="ghost", expires_at=api.now())
    asyncio.run(ensure_stacks(runner, plan, ghost, owner=owner, settings=example_settings(), generated={}))

    async def go() -> tuple[list[str], list[str]]:
        async with await Kube.connect(str(local_cluster.kubeconfig)) as kube:
            sources = doctor_sources(kube, str(stacks.config))
            report = await doctor.audit(kube, sources)
            found = [o.name for o in report.orphans if o.kind == "CloudStack"]
            stale = doctor.Report([o for o in report.orphans if o.kind == "CloudStack"], 0, 0)
            await doctor.fix(kube, stale, sources)  # only the stacks: other tests' leftovers are theirs
            after = await doctor.audit(kube, sources)
            return found, [o.name for o in after.orphans if o.kind == "CloudStack"]

    found, after = asyncio.run(go())
    assert found == [ghost.stack]  # the live phase13 session's stack is not an orphan
    assert after == [] and not stacks.exists("ghost-week17") and stacks.exists(PHASE13)


def test_the_api_server_refuses_an_unknown_or_changed_variant(
    cli: Cli, stacks: Stacks, phase13: dict[str, Any]
) -> None:
    body = {
        "apiVersion": "labenv.io/v1alpha1",
        "kind": "LabSession",
        "metadata": {"name": "zed-week5", "namespace": SESSIONS_NAMESPACE},
        "spec": {"learner": "zed", "course": "infra-36w", "unit": "week5", "variant": "azure"},
    }
    refused = cli.kubectl("create", "-f", "-", stdin=json.dumps(body), check=False)
    assert refused.returncode != 0 and "spec.variant" in refused.stderr and "aws" in refused.stderr
    for patch in ('{"spec":{"variant":"gcp"}}', '{"spec":{"variant":null}}'):
        changed = cli.kubectl(
            "patch", "labsession", PHASE13, "-n", SESSIONS_NAMESPACE, "--type=merge", "-p", patch, check=False
        )
        assert changed.returncode != 0, patch
        assert "spec.variant: cannot be changed; create a new session" in changed.stderr
    assert session(cli, PHASE13)["spec"]["variant"] == "aws"
    unset = cli.labenv("start", "week5", "--learner", "zed", "--variant", "azure", check=False)
    assert unset.returncode == 2 and "azure" in unset.stderr
