"""The AWS session programs under Pulumi's mocks: the resource graph a reviewer checks.

Every assertion reads the inputs the program really sent (recorded by the mocks), so dropping a
boundary, a tag, a public-access block or a firewall rule from a program fails a test here.
"""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from labenv.catalog.loader import default_catalog
from labenv.cloud import programs
from labenv.cloud.config import ObjectStoreSpec, Ownership, PostgresSpec, SandboxSpec, SessionStackArgs
from labenv.cloud.examples import EXAMPLE_AWS
from labenv.cloud.mocks import ACCOUNT, MockRun, run_under_mocks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OWNER = Ownership(
    owner="ada",
    cohort="spring-2026",
    expiry=datetime(2026, 10, 1, 18, tzinfo=UTC),
    session="labenv.ada-week17",
)
MANDATORY = {"owner": "ada", "cohort": "spring-2026", "expiry": "2026-10-01T18:00:00Z"}


def session(**parts: Any) -> MockRun:
    args = SessionStackArgs(cloud="aws", ownership=OWNER, aws=EXAMPLE_AWS, **parts)
    return run_under_mocks(programs.build(args), stack="session.labenv.ada-week17")


@pytest.fixture(scope="module")
def full() -> MockRun:
    """A sandbox (with state bucket) next to managed postgres and object store, as `variant: aws` gives."""
    return session(
        sandbox=SandboxSpec(
            services=("ec2", "vpc", "rds", "s3", "iam"), state_bucket=True, output_prefix="CLOUD_"
        ),
        postgres=PostgresSpec(database="lab", password=SecretStr("generated-pw")),
        object_store=ObjectStoreSpec(buckets=("lake", "checkpoints")),
    )


@pytest.fixture(scope="module")
def sandbox_only() -> MockRun:
    return session(sandbox=SandboxSpec(services=("ec2", "s3", "iam"), state_bucket=False))


def policy_named(run: MockRun, name_part: str) -> tuple[dict[str, Any], dict[str, Any]]:
    found = [r for r in run.of_type("aws:iam/policy:Policy") if name_part in r.inputs["name"]]
    assert len(found) == 1
    return found[0].inputs, json.loads(found[0].inputs["policy"])


def test_learner_identity_has_the_permission_boundary(full: MockRun) -> None:
    boundary, document = policy_named(full, "labenv-boundary-")
    users = {u.inputs["name"]: u.inputs for u in full.of_type("aws:iam/user:User")}
    learner = users["labenv-labenv-ada-week17"]
    assert learner["permissionsBoundary"] == f"arn:aws:iam::{ACCOUNT}:policy/labenv/{boundary['name']}"
    assert learner["path"] == "/labenv/"
    regions = next(s for s in document["Statement"] if s["Sid"] == "DenyOutsideAllowedRegions")
    assert regions["Condition"]["StringNotEquals"]["aws:RequestedRegion"] == ["eu-west-1"]
    sizes = next(s for s in document["Statement"] if s["Sid"] == "DenyInstanceTypes")
    assert sizes["Condition"]["StringNotLike"]["ec2:InstanceType"] == list(EXAMPLE_AWS.instance_types)
    expiry = next(s for s in document["Statement"] if s["Sid"] == "DenyAfterExpiry")
    assert expiry["Condition"]["DateGreaterThan"]["aws:CurrentTime"] == "2026-10-01T18:00:00Z"


def test_every_user_has_a_boundary_and_the_identity_policy_is_attached(full: MockRun) -> None:
    users = full.of_type("aws:iam/user:User")
    assert len(users) == 2  # the sandbox learner and the object store's bucket-only identity
    assert all(u.inputs.get("permissionsBoundary", "").startswith("arn:aws:iam::") for u in users)
    identity, _ = policy_named(full, "labenv-identity-")
    attachments = {
        (a.inputs["user"], a.inputs["policyArn"])
        for a in full.of_type("aws:iam/userPolicyAttachment:UserPolicyAttachment")
    }
    assert (
        "labenv-labenv-ada-week17",
        f"arn:aws:iam::{ACCOUNT}:policy/labenv/{identity['name']}",
    ) in attachments


def test_owner_cohort_expiry_tags_on_every_taggable_resource(full: MockRun) -> None:
    taggable = [
        r
        for r in full.resources
        if r.custom and r.cls is not None and "tags" in inspect.signature(r.cls._internal_init).parameters
    ]
    assert len(taggable) >= 12  # not vacuous: IAM policies, users, role, budget, buckets, RDS, SG...
    for resource in taggable:
        tags = resource.inputs.get("tags") or {}
        missing = {k: v for k, v in MANDATORY.items() if tags.get(k) != v}
        assert not missing, f"{resource.token} {resource.name} lacks {missing}"
        assert tags["labenv-session"] == "labenv.ada-week17"


def test_budget_with_alerts_and_hard_stop(full: MockRun) -> None:
    budget = full.one("aws:budgets/budget:Budget").inputs
    assert (
        budget["budgetType"] == "COST" and budget["limitAmount"] == "25" and budget["timeUnit"] == "MONTHLY"
    )
    assert budget["costFilters"] == [
        {"name": "TagKeyValue", "values": ["user:labenv-session$labenv.ada-week17"]}
    ]
    actual = sorted(n["threshold"] for n in budget["notifications"] if n["notificationType"] == "ACTUAL")
    assert actual == [50, 80, 100]
    assert any(n["notificationType"] == "FORECASTED" for n in budget["notifications"])
    assert all(n["subscriberEmailAddresses"] == ["ops@example.org"] for n in budget["notifications"])
    action = full.one("aws:budgets/budgetAction:BudgetAction").inputs
    assert action["actionType"] == "APPLY_IAM_POLICY" and action["approvalModel"] == "AUTOMATIC"
    assert action["definition"]["iamActionDefinition"]["users"] == ["labenv-labenv-ada-week17"]
    deny_all, document = policy_named(full, "labenv-deny-all-")
    assert action["definition"]["iamActionDefinition"]["policyArn"].endswith(deny_all["name"])
    assert document["Statement"][0] == {
        "Sid": "BudgetExhausted",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
    }


def children(run: MockRun, token: str) -> dict[str, dict[str, Any]]:
    return {r.inputs["bucket"]: r.inputs for r in run.of_type(token)}


def test_buckets_are_versioned_encrypted_private_tls_only_and_destroyable(full: MockRun) -> None:
    buckets = [b.inputs for b in full.of_type("aws:s3/bucket:Bucket")]
    names = {b["bucket"] for b in buckets}
    assert names == {
        "labenv-labenv-ada-week17-tfstate",
        "labenv-labenv-ada-week17-lake",
        "labenv-labenv-ada-week17-checkpoints",
    }
    versioning = children(full, "aws:s3/bucketVersioning:BucketVersioning")
    encryption = children(
        full, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    blocks = children(full, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    ownership = children(full, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    policies = children(full, "aws:s3/bucketPolicy:BucketPolicy")
    for bucket in buckets:
        name = bucket["bucket"]
        assert bucket["forceDestroy"] is True
        assert versioning[name]["versioningConfiguration"] == {"status": "Enabled"}
        rule = encryption[name]["rules"][0]["applyServerSideEncryptionByDefault"]
        assert rule["sseAlgorithm"] in ("AES256", "aws:kms")
        assert all(
            blocks[name][flag] is True
            for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        )
        assert ownership[name]["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
        statement = json.loads(policies[name]["policy"])["Statement"][0]
        assert statement["Effect"] == "Deny" and statement["Condition"] == {
            "Bool": {"aws:SecureTransport": "false"}
        }


def test_rds_is_private_encrypted_and_destroyable(full: MockRun) -> None:
    db = full.one("aws:rds/instance:Instance").inputs
    assert db["publiclyAccessible"] is False
    assert db["storageEncrypted"] is True
    assert db["deletionProtection"] is False and db["skipFinalSnapshot"] is True
    assert db["engine"] == "postgres" and db["username"] == "lab" and db["dbName"] == "lab"
    assert db["instanceClass"] == EXAMPLE_AWS.postgres_instance_class
    params = full.one("aws:rds/parameterGroup:ParameterGroup").inputs
    assert {"name": "rds.force_ssl", "value": "1"} in params["parameters"]


def test_no_security_group_is_open_to_the_internet(full: MockRun) -> None:
    groups = full.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert groups
    for group in groups:
        for rule in group.inputs.get("ingress", []):
            assert "0.0.0.0/0" not in rule.get("cidrBlocks", []) and "::/0" not in rule.get(
                "ipv6CidrBlocks", []
            )
            assert (rule["fromPort"], rule["toPort"]) == (5432, 5432)
            assert rule["cidrBlocks"] == list(EXAMPLE_AWS.client_cidrs)
        assert group.inputs.get("egress") in (None, [])


def test_managed_components_publish_the_in_cluster_setting_names(full: MockRun) -> None:
    components = default_catalog().components
    for name in ("postgres", "object-store"):
        missing = set(components[name].settings) - set(full.outputs)
        assert not missing, f"{name}: the managed variant does not publish {sorted(missing)}"
    assert full.outputs["PGUSER"] == "lab" and full.outputs["PGDATABASE"] == "lab"
    assert full.outputs["DATABASE_URL"].startswith("postgresql://lab:generated-pw@labenv-labenv-ada-week17.")
    assert full.outputs["DATABASE_URL"].endswith(":5432/lab?sslmode=require")
    assert full.outputs["AWS_ENDPOINT_URL"] == "https://s3.eu-west-1.amazonaws.com"
    assert full.outputs["S3_BUCKET_LAKE"] == "labenv-labenv-ada-week17-lake"
    assert {
        "DATABASE_URL",
        "PGPASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "CLOUD_AWS_SECRET_ACCESS_KEY",
    } <= full.secrets


def test_sandbox_names_are_prefixed_when_the_object_store_owns_them(full: MockRun) -> None:
    assert full.outputs["CLOUD_AWS_ACCESS_KEY_ID"] != full.outputs["AWS_ACCESS_KEY_ID"]
    assert full.outputs["CLOUD_TF_STATE_BUCKET"] == "labenv-labenv-ada-week17-tfstate"


def test_object_store_identity_reaches_its_buckets_only(full: MockRun) -> None:
    _, document = policy_named(full, "labenv-objects-")
    allowed = next(s for s in document["Statement"] if s["Sid"] == "OwnBuckets")
    assert sorted(allowed["Resource"]) == sorted(
        [f"arn:aws:s3:::labenv-labenv-ada-week17-{b}" for b in ("lake", "checkpoints")]
        + [f"arn:aws:s3:::labenv-labenv-ada-week17-{b}/*" for b in ("lake", "checkpoints")]
    )


def test_sandbox_alone_publishes_plain_names_and_no_state_bucket(sandbox_only: MockRun) -> None:
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "LABENV_CLOUD_BUDGET"} <= set(
        sandbox_only.outputs
    )
    assert not sandbox_only.of_type("aws:s3/bucket:Bucket")
    assert not sandbox_only.of_type("aws:rds/instance:Instance")
    _, document = policy_named(sandbox_only, "labenv-boundary-")
    assert "DenyDatabaseClasses" not in {s["Sid"] for s in document["Statement"]}


def test_a_sandbox_without_hard_stop_has_no_budget_action() -> None:
    args = SessionStackArgs(
        cloud="aws",
        ownership=OWNER,
        aws=EXAMPLE_AWS.model_copy(update={"hard_stop": False}),
        sandbox=SandboxSpec(services=("s3",)),
    )
    run = run_under_mocks(programs.build(args), stack="session.labenv.ada-week17")
    assert run.of_type("aws:budgets/budget:Budget")
    assert not run.of_type("aws:budgets/budgetAction:BudgetAction")


def test_managed_postgres_needs_the_admins_network() -> None:
    with pytest.raises(ValueError, match=r"aws\.vpc_id"):
        SessionStackArgs(
            cloud="aws",
            ownership=OWNER,
            aws=EXAMPLE_AWS.model_copy(update={"vpc_id": None}),
            postgres=PostgresSpec(password=SecretStr("x")),
        )
