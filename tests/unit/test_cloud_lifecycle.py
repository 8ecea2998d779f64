"""The operator's integration surface: plan, ensure, destroy (failing, then succeeding), list."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from labenv.catalog.loader import default_catalog
from labenv.catalog.model import ResolvedUnit, SupportMode
from labenv.cloud import lifecycle
from labenv.cloud.errors import CloudStackDestroyError, CloudStackError
from labenv.cloud.examples import example_settings
from labenv.cloud.lifecycle import SessionKey, SessionOwner, cloud_plan
from labenv.cloud.runner import MockStackRunner
from labenv.errors import InvalidInput

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SETTINGS = example_settings()
OWNER = SessionOwner(learner="ada", cohort="spring-2026", expires_at=datetime(2026, 10, 1, 18, tzinfo=UTC))
GENERATED = {"postgres-password": "generated-pw", "object-store-access-key": "x"}


def resolve(ref: str, course: str = "infra-36w") -> ResolvedUnit:
    return default_catalog().resolve(ref, course)


def test_week17_gets_an_aws_sandbox_with_a_state_bucket() -> None:
    plan = cloud_plan(resolve("week17"), None)
    assert plan is not None and plan.cloud == "aws"
    assert plan.sandbox_services == ("iam", "ec2", "rds", "vpc", "security-groups", "s3")
    assert plan.state_bucket is True and plan.managed == () and plan.output_prefix == ""
    assert plan.unserved == ("gcp: iam, compute-engine, cloud-sql, vpc, gcs",)


def test_the_variant_picks_the_provider() -> None:
    plan = cloud_plan(resolve("week12"), "gcp")
    assert plan is not None and plan.cloud == "gcp"
    assert "cloud-sql" in plan.sandbox_services and plan.state_bucket is False


def test_variant_aws_moves_postgres_and_object_store_out_of_the_namespace() -> None:
    plan = cloud_plan(resolve("phase13", "python-platform"), "aws")
    assert plan is not None
    assert set(plan.managed) == {"postgres", "object-store"} and plan.sandbox_services == ("dynamodb",)
    assert plan.replaces("postgres") and not plan.replaces("redis")
    assert plan.options["object-store"]["buckets"] == ["files", "datalake"]
    # the managed object store publishes AWS_ACCESS_KEY_ID: the sandbox's keys get a prefix
    assert plan.output_prefix == "CLOUD_"


def test_in_cluster_object_store_also_pushes_the_sandbox_to_the_prefix() -> None:
    plan = cloud_plan(resolve("phase13", "python-platform"), None)
    assert plan is not None and plan.managed == () and plan.sandbox_services == ("dynamodb",)
    assert plan.output_prefix == "CLOUD_"


def test_no_cloud_and_no_variant_means_no_plan() -> None:
    assert cloud_plan(resolve("week21"), None) is None
    plan = cloud_plan(resolve("week10"), "gcp")  # postgres only: managed, no sandbox
    assert plan is not None and plan.managed == ("postgres",) and not plan.sandbox


def test_plan_refusals_name_the_unit_and_option() -> None:
    with pytest.raises(
        InvalidInput, match=r"fastapi-backend-16w/week15: components.postgres.extra_databases"
    ):
        cloud_plan(resolve("week15", "fastapi-backend-16w"), "aws")
    gcp = cloud_plan(resolve("week15", "fastapi-backend-16w"), "gcp")  # Cloud SQL creates them
    assert gcp is not None and gcp.options["postgres"]["extra_databases"] == ["saas_test"]
    with pytest.raises(InvalidInput, match="variant: 'azure'"):
        cloud_plan(resolve("week17"), "azure")


def test_every_catalog_unit_plans_or_refuses_with_one_line() -> None:
    catalog = default_catalog()
    planned = 0
    refusals: list[str] = []
    for course in catalog.courses.values():
        for unit in course.units:
            if unit.support.mode == SupportMode.UNSUPPORTED:
                continue
            resolved = catalog.resolve_unit(course, unit)
            for variant in (None, "aws", "gcp"):
                try:
                    planned += cloud_plan(resolved, variant) is not None
                except InvalidInput as exc:
                    refusals.append(str(exc))
    assert planned > 50
    assert refusals and all("\n" not in r and "components.postgres" in r for r in refusals)


def ensure(
    runner: MockStackRunner, ref: str, course: str, variant: str | None, key: SessionKey
) -> dict[str, str]:
    plan = cloud_plan(resolve(ref, course), variant)
    assert plan is not None
    return asyncio.run(
        lifecycle.ensure_stacks(runner, plan, key, owner=OWNER, settings=SETTINGS, generated=GENERATED)
    )


def test_ensure_stacks_returns_the_settings_for_the_session_secret() -> None:
    runner = MockStackRunner()
    key = SessionKey(namespace="labenv", name="ada-phase13")
    outputs = ensure(runner, "phase13", "python-platform", "aws", key)
    assert outputs["PGPASSWORD"] == "generated-pw" and outputs["PGUSER"] == "lab"
    assert outputs["S3_BUCKET_DATALAKE"].endswith("-datalake")
    assert outputs["CLOUD_AWS_ACCESS_KEY_ID"].startswith("AKIA")
    assert outputs["AWS_ACCESS_KEY_ID"] != outputs["CLOUD_AWS_ACCESS_KEY_ID"]
    assert runner.list_stacks() == ["session.labenv.ada-phase13"]
    run = runner.runs["session.labenv.ada-phase13"]
    assert run.one("aws:rds/instance:Instance").inputs["publiclyAccessible"] is False
    # again: idempotent, same stack
    assert ensure(runner, "phase13", "python-platform", "aws", key) == outputs
    assert runner.list_stacks() == ["session.labenv.ada-phase13"]


def test_ensure_needs_the_generated_password_first() -> None:
    plan = cloud_plan(resolve("week10"), "aws")
    assert plan is not None
    with pytest.raises(CloudStackError, match="'postgres-password'"):
        asyncio.run(
            lifecycle.ensure_stacks(
                MockStackRunner(),
                plan,
                SessionKey(namespace="labenv", name="ada-week10"),
                owner=OWNER,
                settings=SETTINGS,
                generated={},
            )
        )


def test_a_failed_up_is_one_line_and_retryable() -> None:
    runner = MockStackRunner()
    runner.fail_next("up", message="AccessDenied: not authorized to perform iam:CreateUser")
    key = SessionKey(namespace="labenv", name="ada-week17")
    with pytest.raises(CloudStackError) as failed:
        ensure(runner, "week17", "infra-36w", None, key)
    assert "\n" not in str(failed.value) and "iam:CreateUser" in str(failed.value)
    condition = lifecycle.stack_condition(failed.value, generation=3)
    assert (condition.type, condition.status, condition.reason) == (
        "CloudStackReady",
        "False",
        "StackUpdateFailed",
    )
    assert ensure(runner, "week17", "infra-36w", None, key)["TF_STATE_BUCKET"].endswith("-tfstate")
    assert lifecycle.stack_condition(None).status == "True"


def test_destroy_that_fails_then_succeeds() -> None:
    runner = MockStackRunner()
    key = SessionKey(namespace="labenv", name="ada-week17")
    ensure(runner, "week17", "infra-36w", None, key)
    runner.fail_next("destroy", key.stack, message="DeleteConflict: policy is attached")
    with pytest.raises(CloudStackDestroyError, match="DeleteConflict") as failed:
        asyncio.run(lifecycle.destroy_stacks(runner, key))
    # the stack (and so the cloud resources) is still there: the finalizer must stay
    assert runner.list_stacks() == [key.stack]
    condition = lifecycle.destroy_failed_condition(failed.value)
    assert (condition.type, condition.status, condition.reason) == (
        "CloudStackDestroyFailed",
        "True",
        "DestroyFailed",
    )
    assert lifecycle.FINALIZER in condition.message
    asyncio.run(lifecycle.destroy_stacks(runner, key))
    assert runner.list_stacks() == []
    assert lifecycle.destroy_failed_condition(None).status == "False"
    assert runner.history == [("up", key.stack), ("destroy", key.stack), ("destroy", key.stack)]


def test_destroy_of_a_missing_stack_succeeds() -> None:
    asyncio.run(lifecycle.destroy_stacks(MockStackRunner(), SessionKey(namespace="labenv", name="gone")))


def test_unexpected_runner_errors_become_destroy_errors() -> None:
    class Broken(MockStackRunner):
        def destroy(self, stack_name: str) -> None:
            raise OSError("backend unreachable\nmore detail")

    with pytest.raises(CloudStackDestroyError, match=r"destroy failed: backend unreachable$"):
        asyncio.run(lifecycle.destroy_stacks(Broken(), SessionKey(namespace="labenv", name="x")))


def test_list_stacks_and_orphans_for_doctor(tmp_path: Path) -> None:
    runner = MockStackRunner(tmp_path)
    for name in ("ada-week17", "bob-week17"):
        ensure(runner, "week17", "infra-36w", None, SessionKey(namespace="labenv", name=name))
    (tmp_path / "cluster.aws.labenv.json").write_text("{}")
    stacks = asyncio.run(lifecycle.list_stacks(MockStackRunner(tmp_path)))  # a new process sees them too
    assert [(s.namespace, s.name) for s in stacks] == [("labenv", "ada-week17"), ("labenv", "bob-week17")]
    assert [s.stack for s in lifecycle.orphans(stacks, {("labenv", "ada-week17")})] == [
        "session.labenv.bob-week17"
    ]
    assert oct((tmp_path / "session.labenv.ada-week17.json").stat().st_mode & 0o777) == "0o600"


def test_fingerprint_changes_with_what_the_stack_depends_on() -> None:
    plan = cloud_plan(resolve("week17"), None)
    assert plan is not None
    key = SessionKey(namespace="labenv", name="ada-week17")
    first = lifecycle.stack_fingerprint(lifecycle.stack_args(plan, key, OWNER, SETTINGS, GENERATED))
    same = lifecycle.stack_fingerprint(lifecycle.stack_args(plan, key, OWNER, SETTINGS, GENERATED))
    later = OWNER.model_copy(update={"expires_at": datetime(2026, 10, 2, tzinfo=UTC)})
    extended = lifecycle.stack_fingerprint(lifecycle.stack_args(plan, key, later, SETTINGS, GENERATED))
    assert first == same != extended


def test_retry_delay_backs_off_to_a_cap() -> None:
    assert [lifecycle.retry_delay(n) for n in range(4)] == [30.0, 60.0, 120.0, 240.0]
    assert lifecycle.retry_delay(20) == lifecycle.RETRY_MAX_SECONDS


def test_missing_cloud_settings_are_one_line() -> None:
    plan = cloud_plan(resolve("week17"), None)
    assert plan is not None
    settings = SETTINGS.model_copy(update={"aws": None})
    with pytest.raises(InvalidInput, match="aws: settings are required"):
        lifecycle.stack_args(plan, SessionKey(namespace="labenv", name="a"), OWNER, settings, GENERATED)
