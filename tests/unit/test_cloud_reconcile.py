"""The operator's cloud integration: the pure view (labenv.reconcile.cloud), the glue that drives the
stack (labenv.controller.cloud) against an in-memory API, the mock runner's file hooks, and
`variant` from the CLI to the session body."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from labenv import api, doctor, names
from labenv.catalog.loader import default_catalog
from labenv.catalog.model import ResolvedUnit
from labenv.cloud import lifecycle
from labenv.cloud.errors import CloudStackDestroyError, CloudStackError
from labenv.cloud.examples import example_settings
from labenv.cloud.runner import MockStackRunner
from labenv.controller.cloud import SessionClouds, SessionStackSource
from labenv.controller.reconciler import SessionRef
from labenv.errors import InvalidInput
from labenv.kube.client import ApiError, Kube
from labenv.kube.credentials import Credentials
from labenv.reconcile import cloud, cohort, session, status
from labenv.reconcile.status import WorkloadState
from labenv.sessions import StartRequest, plan_session

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

Obj = dict[str, Any]
CATALOG = default_catalog()
CRDS = Path(__file__).resolve().parents[2] / "charts" / "labenv" / "crds"
SETTINGS = example_settings()
GENERATED = {"postgres-password": "generated-pw"}


def resolve(unit: str, course: str = "infra-36w") -> ResolvedUnit:
    return CATALOG.resolve(unit, course)


def spec(unit: str, course: str = "infra-36w", variant: api.Variant | None = None) -> api.SessionSpec:
    return api.SessionSpec(learner="ada", course=course, unit=unit, variant=variant)


def stack_state(ready: bool, plan: lifecycle.CloudPlan) -> cloud.CloudState:
    error = None if ready else CloudStackError("stack x: up failed: error: quota")
    return cloud.CloudState(plan, lifecycle.stack_condition(error, 1))


def ready(component: str, kind: str, name: str) -> WorkloadState:
    return WorkloadState(kind=kind, name=name, component=component, ready=True, failed=False, message="ok")


# --- the pure view ---------------------------------------------------------------------------------


def test_variant_takes_the_managed_components_out_of_the_namespace() -> None:
    resolved = resolve("phase13", "python-platform")
    plan = cloud.plan(resolved, spec("phase13", "python-platform", "aws"))
    assert plan is not None
    local = cloud.in_namespace(resolved, plan)
    assert [c.name for c in local.components] == ["redis", "mongodb", "opensearch", "workspace"]
    assert set(local.options) == {"redis", "mongodb", "opensearch", "workspace"}
    # what the namespace renders: no postgres objects, no in-cluster DATABASE_URL to fight the stack's
    ctx = session.context("ada-phase13", "labenv", spec("phase13", "python-platform", "aws"), "ws:1")
    generated = {
        k: "x" for c in resolved.components for k in (names.generated_key(c.name, n) for n in c.credentials)
    }
    desired = session.desired(CATALOG, local, ctx, "uid-1", generated)
    kinds = {(o["kind"], o["metadata"]["name"]) for p in desired.components for o in p.objects}
    assert ("StatefulSet", "postgres") not in kinds and ("StatefulSet", "redis") in kinds
    published = set(desired.connection_secret["data"])
    assert "DATABASE_URL" not in published and "AWS_ENDPOINT_URL" not in published
    # without a variant nothing moves: the same unit object comes back
    assert cloud.in_namespace(resolved, cloud.plan(resolved, spec("phase13", "python-platform"))) is resolved
    assert cloud.plan(resolve("week21"), spec("week21")) is None


def test_the_stack_outputs_and_the_namespace_settings_never_share_a_key() -> None:
    resolved = resolve("phase13", "python-platform")
    plan = cloud.plan(resolved, spec("phase13", "python-platform", "aws"))
    assert plan is not None
    in_namespace = {k for c in cloud.in_namespace(resolved, plan).components for k in c.settings}
    key = lifecycle.SessionKey(namespace="labenv", name="ada-phase13")
    owner = lifecycle.SessionOwner(learner="ada", expires_at=api.now())
    outputs = asyncio.run(
        lifecycle.ensure_stacks(
            MockStackRunner(), plan, key, owner=owner, settings=SETTINGS, generated=GENERATED
        )
    )
    # two field managers own one Secret: a shared key would flip between their values
    assert not in_namespace & set(outputs)
    assert {"DATABASE_URL", "AWS_ACCESS_KEY_ID", "CLOUD_AWS_ACCESS_KEY_ID"} <= set(outputs)


def test_a_variant_that_would_strand_a_dependent_component_is_refused_in_one_line() -> None:
    resolved = resolve("phase19", "python-platform")  # keycloak connects to the in-namespace postgres
    with pytest.raises(InvalidInput, match=r"^spec.variant: aws moves postgres .* but keycloak") as refused:
        cloud.plan(resolved, spec("phase19", "python-platform", "aws"))
    assert "\n" not in str(refused.value)
    assert cloud.plan(resolved, spec("phase19", "python-platform")) is not None  # sandbox only: fine


def test_managed_components_take_the_stack_condition_and_their_dependants_wait() -> None:
    postgres, kafka = CATALOG.components["postgres"], CATALOG.components["kafka"]
    dependant = kafka.model_copy(update={"depends_on": ("postgres",)})
    plan = lifecycle.CloudPlan(cloud="aws", managed=("postgres",))
    components = [postgres, dependant]

    failing = cloud.observe(components, [], [], {}, 1, stack_state(False, plan))
    assert [(c.type, c.status, c.reason) for c in failing] == [
        ("PostgresReady", "False", "StackUpdateFailed"),
        ("KafkaReady", "False", "WaitingForDependencies"),
    ]
    assert failing[0].message.startswith("managed in aws by the session's cloud stack: stack x")

    up = cloud.observe(
        components,
        ["kafka"],
        [ready("kafka", w.kind, w.name) for w in kafka.readiness],
        {},
        1,
        stack_state(True, plan),
    )
    assert [(c.type, c.status) for c in up] == [("PostgresReady", "True"), ("KafkaReady", "True")]
    # no workload of the managed component is expected, and the session is Ready with the stack's condition
    conditions = [*up, *cloud.conditions(stack_state(True, plan))]
    assert status.ready_condition(conditions, 1, None).status == "True"
    failed_stack = [*up, *cloud.conditions(stack_state(False, plan))]
    overall = status.ready_condition(failed_stack, 1, None)
    assert overall.status == "False" and "CloudStack: StackUpdateFailed" in overall.message
    # without a cloud state, exactly status.observe
    assert cloud.observe(components, [], [], {}, 1, None) == status.observe(components, [], [], {}, 1)


def test_the_stack_condition_is_carried_through_workload_events() -> None:
    plan = lifecycle.CloudPlan(cloud="aws", sandbox_services=("s3",))
    assert cloud.carried(plan, {}, 2).condition.reason == "StackPending"
    written = lifecycle.stack_condition(None, 1).model_dump(by_alias=True)
    carried = cloud.carried(plan, {"conditions": [{"type": "KafkaReady"}, written]}, 2)
    assert (carried.condition.status, carried.condition.observed_generation, carried.failure) == (
        "True",
        2,
        None,
    )
    unconfigured = cloud.not_configured(plan, "the operator has no cloud settings", 2)
    assert (
        unconfigured.failure == "this session needs aws (a sandbox), but the operator has no cloud settings"
    )
    previous = {"conditions": [unconfigured.condition.model_dump(by_alias=True)]}
    assert cloud.carried(plan, previous, 2).failure == unconfigured.failure


def test_outputs_secret_egress_and_finalizer_patches() -> None:
    ctx = session.context("ada-phase13", "labenv", spec("phase13", "python-platform", "aws"), "ws:1")
    secret = cloud.outputs_secret(ctx, {"DATABASE_URL": "postgresql://x"}, "f1")
    assert secret["metadata"] == {
        "name": "labenv-connection",
        "namespace": "lab-ada-phase13",
        "annotations": {lifecycle.FINGERPRINT_ANNOTATION: "f1"},
    }
    assert base64.b64decode(secret["data"]["DATABASE_URL"]).decode() == "postgresql://x"

    both = lifecycle.CloudPlan(cloud="aws", managed=("postgres", "object-store"))
    [policy] = cloud.managed_egress(ctx, both)
    assert policy["spec"]["podSelector"] == {} and policy["spec"]["policyTypes"] == ["Egress"]
    assert [p["port"] for p in policy["spec"]["egress"][0]["ports"]] == [443, 5432]
    assert cloud.managed_egress(ctx, lifecycle.CloudPlan(cloud="aws", sandbox_services=("s3",))) == []
    assert cloud.managed_egress(ctx, None) == []

    body = {"metadata": {"resourceVersion": "7", "finalizers": ["other.io/keep"]}}
    added = cloud.finalizers_patch(body, add=True)
    assert added == {
        "metadata": {"resourceVersion": "7", "finalizers": ["other.io/keep", lifecycle.FINALIZER]}
    }
    held = {"metadata": {"resourceVersion": "8", "finalizers": [lifecycle.FINALIZER, "other.io/keep"]}}
    assert cloud.finalizers_patch(held, add=False)["metadata"]["finalizers"] == ["other.io/keep"]
    assert cloud.has_finalizer(held) and not cloud.has_finalizer(body)


def test_destroying_status_sets_and_clears_the_failure_condition() -> None:
    previous = {
        "phase": "Ready",
        "namespace": "lab-x",
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "AllComponentsReady", "lastTransitionTime": "t0"}
        ],
    }
    going = cloud.destroying_status(previous, None, "destroying", "t1")
    assert going["phase"] == "Terminating" and going["conditions"] == previous["conditions"]
    failed = lifecycle.destroy_failed_condition(
        CloudStackDestroyError("stack x: destroy failed: error: denied")
    )
    first = cloud.destroying_status(going, failed, failed.message, "t2")
    assert cloud.destroy_failed(first) and first["namespace"] == "lab-x"
    assert first["conditions"][-1]["lastTransitionTime"] == "t2"
    again = cloud.destroying_status(first, failed, failed.message, "t3")
    assert again["conditions"][-1]["lastTransitionTime"] == "t2"  # still failing: no transition
    cleared = cloud.destroying_status(again, lifecycle.destroy_failed_condition(None), "destroyed", "t4")
    assert not cloud.destroy_failed(cleared)
    assert [c["type"] for c in cleared["conditions"]] == ["Ready", "CloudStackDestroyFailed"]


# --- variant from the CLI to the API ----------------------------------------------------------------


def test_start_request_carries_the_variant_and_refuses_what_cannot_run() -> None:
    name, planned = plan_session(CATALOG, StartRequest("phase13", "ada", "python-platform", "8h", "aws"))
    assert (name, planned.variant) == ("ada-python-platform-phase13", "aws")
    assert api.session_body(name, "labenv", planned)["spec"]["variant"] == "aws"
    _, plain = plan_session(CATALOG, StartRequest("week21", "ada", None, "8h"))
    assert "variant" not in api.session_body("ada-week21", "labenv", plain)["spec"]
    with pytest.raises(InvalidInput, match="extra_databases"):
        plan_session(CATALOG, StartRequest("week15", "ada", "fastapi-backend-16w", "8h", "aws"))
    with pytest.raises(InvalidInput, match="keycloak"):
        plan_session(CATALOG, StartRequest("phase19", "ada", "python-platform", "8h", "gcp"))


def test_crds_declare_the_variant_and_keep_it_immutable() -> None:
    for crd in ("labsessions.labenv.io.yaml", "labcohorts.labenv.io.yaml"):
        schema = yaml.safe_load((CRDS / crd).read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        spec_schema = schema["properties"]["spec"]
        assert spec_schema["properties"]["variant"]["enum"] == ["aws", "gcp"]
        rules = [r["rule"] for r in spec_schema["x-kubernetes-validations"]]
        assert any("oldSelf.variant" in r for r in rules)


def test_a_cohort_passes_its_variant_to_its_sessions() -> None:
    ref = cohort.CohortRef(
        name="fall",
        namespace="labenv",
        uid="u",
        generation=1,
        spec=api.CohortSpec(course="python-platform", unit="phase13", learners=("ada",), variant="gcp"),
    )
    [session_obj] = cohort.plan(ref, [], api.now()).apply
    assert session_obj["spec"]["variant"] == "gcp"
    plain = cohort.CohortRef(
        "fall", "labenv", "u", 1, api.CohortSpec(course="infra-36w", unit="week21", learners=("ada",))
    )
    assert "variant" not in cohort.plan(plain, [], api.now()).apply[0]["spec"]


# --- the mock runner's hooks for an operator in another process ---------------------------------------


def test_mock_runner_file_hooks_fail_delay_and_journal(tmp_path: Path) -> None:
    runner = MockStackRunner(tmp_path)
    key = lifecycle.SessionKey(namespace="labenv", name="ada-week17")
    plan = cloud.plan(resolve("week17"), spec("week17"))
    assert plan is not None
    owner = lifecycle.SessionOwner(learner="ada", expires_at=api.now())

    def up() -> dict[str, str]:
        return asyncio.run(
            lifecycle.ensure_stacks(runner, plan, key, owner=owner, settings=SETTINGS, generated={})
        )

    (tmp_path / "fail-up").write_text("AccessDenied: not today")
    with pytest.raises(CloudStackError, match="AccessDenied: not today"):
        up()
    (tmp_path / "fail-up").unlink()
    assert up()["TF_STATE_BUCKET"]
    (tmp_path / f"{key.stack}.fail-destroy").write_text("DeleteConflict")
    with pytest.raises(CloudStackDestroyError, match="DeleteConflict"):
        asyncio.run(lifecycle.destroy_stacks(runner, key))
    assert runner.list_stacks() == [key.stack]
    (tmp_path / f"{key.stack}.fail-destroy").unlink()
    (tmp_path / "delay-destroy").write_text("0.3")
    asyncio.run(lifecycle.destroy_stacks(runner, key))
    assert runner.list_stacks() == []
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert [(e["op"], bool(e["error"])) for e in journal] == [
        ("up", True),
        ("up", False),
        ("destroy", True),
        ("destroy", False),
    ]
    assert journal[-1]["end"] - journal[-1]["start"] >= 0.3


# --- the glue, against an in-memory API server -----------------------------------------------------


class FakeKube(Kube):
    """The verbs the cloud glue uses, on a dict; every write is logged in order with the runner's."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(Credentials(server="https://fake.invalid"), session=None)  # type: ignore[arg-type]
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.log = log
        self.version = 0

    def put(self, obj: Obj) -> Obj:
        self.version += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.version)
        meta.setdefault("uid", f"uid-{self.version}")
        self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        return copy.deepcopy(obj)

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return copy.deepcopy(self.objects.get((kind, namespace or "", name)))

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if k == kind and namespace in (None, ns)
        ]

    async def apply(self, obj: Obj, field_manager: str = names.FIELD_MANAGER, dry_run: bool = False) -> Obj:
        self.log.append(f"apply {obj['kind']} {obj['metadata']['name']} as {field_manager}")
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        current = self.objects.get(key, {"metadata": {}})
        merged = {**current, **copy.deepcopy(obj), "data": {**current.get("data", {}), **obj.get("data", {})}}
        return self.put(merged)

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Obj,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        key = (kind, namespace or "", name)
        current = self.objects.get(key)
        if current is None:
            raise ApiError(404, "NotFound", "not found")
        meta_patch = dict(patch.get("metadata", {}))
        expected = meta_patch.pop("resourceVersion", None)
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        if "finalizers" in meta_patch:
            self.log.append(f"finalizers {name} {meta_patch['finalizers']}")
            current["metadata"]["finalizers"] = meta_patch.pop("finalizers")
        if "annotations" in meta_patch:
            self.log.append(f"annotate {name}")
            current["metadata"].setdefault("annotations", {}).update(meta_patch.pop("annotations"))
        if current["metadata"].get("deletionTimestamp") and not current["metadata"].get("finalizers"):
            del self.objects[key]  # the API server removes a deleted object once nothing holds it
            return copy.deepcopy(current)
        return self.put(current)

    async def apply_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: Obj,
        field_manager: str = names.FIELD_MANAGER,
    ) -> Obj:
        self.log.append(f"status {name} {status.get('phase')}")
        current = self.objects[(kind, namespace, name)]
        current["status"] = copy.deepcopy(status)
        return self.put(current)

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        self.log.append(f"delete {kind} {name}")
        key = (kind, namespace or "", name)
        current = self.objects.get(key)
        if current is None:
            return False
        if current["metadata"].get("finalizers"):
            current["metadata"]["deletionTimestamp"] = api.timestamp(api.now())
            self.put(current)
        else:
            del self.objects[key]
        return True


class LoggedRunner(MockStackRunner):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def up(self, stack_name: str, program_args: Any) -> dict[str, str]:
        self.log.append(f"up {stack_name}")
        return super().up(stack_name, program_args)

    def destroy(self, stack_name: str) -> None:
        self.log.append(f"destroy {stack_name}")
        super().destroy(stack_name)


class World:
    """One LabSession of week17 (an AWS sandbox), its lab namespace, the glue, the runner."""

    def __init__(self, runner: bool = True, retry_base: float = 30.0) -> None:
        self.log: list[str] = []
        self.kube = FakeKube(self.log)
        self.runner = LoggedRunner(self.log)
        self.clouds = SessionClouds(
            self.kube,
            self.runner if runner else None,
            SETTINGS if runner else None,
            retry_base=retry_base,
        )
        self.spec = spec("week17")
        self.session = self.kube.put(
            {
                "apiVersion": names.API_VERSION,
                "kind": names.SESSION_KIND,
                "metadata": {
                    "name": "ada-week17",
                    "namespace": "labenv",
                    "creationTimestamp": "2026-05-01T08:00:00Z",
                },
                "spec": self.spec.model_dump(exclude_none=True),
            }
        )
        self.uid = self.session["metadata"]["uid"]
        self.kube.put(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "lab-ada-week17", "labels": {names.LABEL_SESSION_UID: self.uid}},
            }
        )
        self.ctx = session.context("ada-week17", "labenv", self.spec, "ws:1")
        plan = cloud.plan(resolve("week17"), self.spec)
        assert plan is not None
        self.plan = plan
        self.stack = "session.labenv.ada-week17"

    def body(self) -> Obj:
        found = self.kube.objects.get((names.SESSION_KIND, "labenv", "ada-week17"))
        assert found is not None
        return copy.deepcopy(found)

    async def ensure(self) -> cloud.CloudState:
        ref = SessionRef.from_body(self.body())
        return await self.clouds.ensure(ref, self.spec, self.plan, self.ctx, {}, "2026-05-01T16:00:00Z")

    def lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return asyncio.Lock()


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true after {timeout}s")


def writes(log: list[str]) -> list[str]:
    return [entry for entry in log if not entry.startswith("status")]


def test_ensure_holds_the_finalizer_before_up_and_runs_up_only_when_inputs_change() -> None:
    world = World()

    async def go() -> None:
        state = await world.ensure()
        assert state.ready and state.retry_after is None
        assert writes(world.log) == [
            f"finalizers ada-week17 ['{lifecycle.FINALIZER}']",
            f"up {world.stack}",
            f"apply Secret labenv-connection as {cloud.FIELD_MANAGER}",
            "annotate ada-week17",
        ]
        secret = world.kube.objects[("Secret", "lab-ada-week17", "labenv-connection")]
        assert base64.b64decode(secret["data"]["AWS_ACCESS_KEY_ID"]).decode().startswith("AKIA")
        annotations = world.body()["metadata"]["annotations"]
        assert (
            annotations[lifecycle.FINGERPRINT_ANNOTATION]
            == secret["metadata"]["annotations"][lifecycle.FINGERPRINT_ANNOTATION]
        )
        # same inputs, outputs stored: no up, no write
        world.log.clear()
        assert (await world.ensure()).ready
        assert world.log == []
        # a new operator process (no memory) reads the annotations: still nothing to do
        world.clouds = SessionClouds(world.kube, world.runner, SETTINGS)
        assert (await world.ensure()).ready and world.log == []
        # the outputs are gone (namespace re-created by hand): up again
        del world.kube.objects[("Secret", "lab-ada-week17", "labenv-connection")]
        assert (await world.ensure()).ready
        assert f"up {world.stack}" in world.log
        # the inputs changed (extended: the expiry tag and policy follow)
        world.log.clear()
        ref = SessionRef.from_body(world.body())
        await world.clouds.ensure(ref, world.spec, world.plan, world.ctx, {}, "2026-05-02T16:00:00Z")
        assert f"up {world.stack}" in world.log

    asyncio.run(go())


def test_a_failed_up_reports_the_condition_and_backs_off() -> None:
    world = World()
    world.runner.fail_next("up", times=2, message="AccessDenied: iam:CreateUser")

    async def go() -> None:
        first = await world.ensure()
        assert (first.condition.status, first.condition.reason) == ("False", "StackUpdateFailed")
        assert "AccessDenied" in first.condition.message and first.retry_after == 30.0
        # the finalizer is already there: a crash during a partial up still ends in a destroy
        assert cloud.has_finalizer(world.body())
        # a workload event during the back-off does not run up again
        world.log.clear()
        body = world.body()
        body["status"] = {"conditions": [first.condition.model_dump(by_alias=True)]}
        world.kube.objects[(names.SESSION_KIND, "labenv", "ada-week17")] = body
        waiting = await world.ensure()
        assert world.log == [] and waiting.retry_after is not None and 0 < waiting.retry_after <= 30
        assert waiting.condition.reason == "StackUpdateFailed"
        world.clouds._not_before.clear()  # the delay has passed
        second = await world.ensure()
        assert second.retry_after == 60.0  # doubled
        world.clouds._not_before.clear()
        assert (await world.ensure()).ready
        world.runner.fail_next("up")
        world.clouds._not_before.clear()
        ref = SessionRef.from_body(world.body())
        again = await world.clouds.ensure(ref, world.spec, world.plan, world.ctx, {}, "2026-05-03T16:00:00Z")
        assert again.retry_after == 30.0  # a success resets the back-off

    asyncio.run(go())


def test_without_cloud_settings_the_session_fails_and_gets_no_finalizer() -> None:
    world = World(runner=False)
    state = asyncio.run(world.ensure())
    assert state.failure is not None and "no cloud settings" in state.failure
    assert state.condition.reason == cloud.NOT_CONFIGURED
    assert world.log == [] and not cloud.has_finalizer(world.body())


async def finalize(world: World, timeout: float = 10) -> None:
    world.clouds.watch_deletion(world.body(), world.lock)
    tasks = list(world.clouds._finalizing.values())
    assert len(tasks) == 1
    await asyncio.wait_for(tasks[0], timeout)


def test_deletion_destroys_the_stack_then_the_namespace_then_releases_the_finalizer() -> None:
    world = World()

    async def go() -> None:
        await world.ensure()
        world.log.clear()
        await world.kube.delete(names.API_VERSION, names.SESSION_KIND, "ada-week17", "labenv")
        await finalize(world)

    asyncio.run(go())
    assert writes(world.log) == [
        "delete LabSession ada-week17",
        f"destroy {world.stack}",
        "delete Namespace lab-ada-week17",
        "finalizers ada-week17 []",
    ]
    assert world.log[1] == "status ada-week17 Terminating"  # `labenv list` shows what is going on
    assert world.runner.list_stacks() == []
    assert (names.SESSION_KIND, "labenv", "ada-week17") not in world.kube.objects


def test_a_failed_destroy_keeps_the_finalizer_reports_and_retries_until_it_succeeds() -> None:
    world = World(retry_base=0.05)
    seen: list[Mapping[str, Any]] = []
    namespace_kept: list[bool] = []

    async def go() -> None:
        await world.ensure()
        world.runner.fail_next("destroy", times=2, message="DeleteConflict: a policy is attached")
        await world.kube.delete(names.API_VERSION, names.SESSION_KIND, "ada-week17", "labenv")
        world.clouds.watch_deletion(world.body(), world.lock)
        task = next(iter(world.clouds._finalizing.values()))
        await until(lambda: len([e for e in world.runner.history if e[0] == "destroy"]) >= 2)
        seen.append(world.body())
        namespace_kept.append(("Namespace", "", "lab-ada-week17") in world.kube.objects)
        world.clouds.watch_deletion(world.body(), world.lock)  # another event: no second task
        assert len(world.clouds._finalizing) == 1
        await asyncio.wait_for(task, 10)

    asyncio.run(go())
    failing = seen[0]
    assert cloud.has_finalizer(failing) and namespace_kept == [True]
    condition = next(c for c in failing["status"]["conditions"] if c["type"] == "CloudStackDestroyFailed")
    assert (condition["status"], condition["reason"]) == ("True", "DestroyFailed")
    assert "DeleteConflict" in condition["message"] and lifecycle.FINALIZER in condition["message"]
    assert failing["status"]["phase"] == "Terminating"
    order = writes(world.log)
    destroys = [i for i, e in enumerate(order) if e.startswith("destroy")]
    assert len(destroys) == 3
    assert order.index("delete Namespace lab-ada-week17") > destroys[-1]
    assert order[-1] == "finalizers ada-week17 []"
    assert world.log.count("status ada-week17 Terminating") >= 3  # failure twice, then cleared
    assert world.runner.list_stacks() == []


def test_without_a_runner_the_finalizer_stays_and_the_reason_is_reported() -> None:
    world = World(retry_base=0.05)

    async def go() -> None:
        await world.ensure()
        world.clouds = SessionClouds(world.kube, retry_base=0.05)  # restarted without settings
        await world.kube.delete(names.API_VERSION, names.SESSION_KIND, "ada-week17", "labenv")
        world.clouds.watch_deletion(world.body(), world.lock)
        await until(lambda: cloud.destroy_failed(world.body().get("status") or {}))
        await world.clouds.close()

    asyncio.run(go())
    body = world.body()
    assert cloud.has_finalizer(body) and ("Namespace", "", "lab-ada-week17") in world.kube.objects
    message = next(
        c["message"] for c in body["status"]["conditions"] if c["type"] == "CloudStackDestroyFailed"
    )
    assert "cannot destroy: the operator has no cloud settings" in message
    assert world.runner.list_stacks() == [world.stack]


def test_an_admin_who_removes_the_finalizer_stops_the_retries() -> None:
    world = World(retry_base=0.05)

    async def go() -> None:
        await world.ensure()
        world.runner.fail_next("destroy", times=1000)
        await world.kube.delete(names.API_VERSION, names.SESSION_KIND, "ada-week17", "labenv")
        world.clouds.watch_deletion(world.body(), world.lock)
        task = next(iter(world.clouds._finalizing.values()))
        await until(lambda: cloud.destroy_failed(world.body().get("status") or {}))
        await world.kube.merge_patch(
            names.API_VERSION, names.SESSION_KIND, "ada-week17", {"metadata": {"finalizers": []}}, "labenv"
        )
        await asyncio.wait_for(task, 10)

    asyncio.run(go())
    assert not world.clouds._finalizing


def test_sessions_without_the_finalizer_or_not_deleted_start_no_task() -> None:
    world = World()

    async def go() -> None:
        world.clouds.watch_deletion(world.body(), world.lock)  # alive, no finalizer
        await world.ensure()
        world.clouds.watch_deletion(world.body(), world.lock)  # alive, finalizer
        assert not world.clouds._finalizing

    asyncio.run(go())


def test_doctor_source_marks_stacks_of_missing_sessions(tmp_path: Path) -> None:
    world = World()
    asyncio.run(world.ensure())
    ghost = lifecycle.SessionKey(namespace="labenv", name="ghost-week17")
    owner = lifecycle.SessionOwner(learner="ghost", expires_at=api.now())
    asyncio.run(
        lifecycle.ensure_stacks(world.runner, world.plan, ghost, owner=owner, settings=SETTINGS, generated={})
    )
    source = SessionStackSource(world.kube, world.runner)
    stacks = {s.name: s for s in asyncio.run(source.stacks())}
    assert stacks[world.stack].session_uid == world.uid
    assert stacks[ghost.stack] == doctor.CloudStack("pulumi", ghost.stack, "", "labenv/ghost-week17")
    asyncio.run(source.delete(stacks[ghost.stack]))
    assert world.runner.list_stacks() == [world.stack]
