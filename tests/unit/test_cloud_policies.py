"""The pure parts of the cloud layer: IAM documents, service mappings, names, node-pool sizing."""

from __future__ import annotations

import pytest

from labenv.catalog.loader import default_catalog
from labenv.cloud import aws_policies, naming, services
from labenv.cloud.cluster_sizing import MIN_NODES, node_pool_size
from labenv.cloud.config import Capacity
from labenv.cloud.errors import CloudConfigError

EXPIRY = "2026-10-01T18:00:00Z"


def boundary(prefixes: tuple[str, ...] = ("ec2", "iam", "rds", "s3"), bucket: str | None = None) -> dict:
    return aws_policies.boundary_policy(
        slug="labenv-ada-week17",
        owner="ada",
        expiry=EXPIRY,
        prefixes=prefixes,
        regions=("eu-west-1", "eu-central-1"),
        instance_types=("t3.micro", "t4g.*"),
        db_instance_classes=("db.t4g.micro",),
        state_bucket=bucket,
    )


def statement(policy: dict, sid: str) -> dict:
    found = [s for s in policy["Statement"] if s.get("Sid") == sid]
    assert len(found) == 1, f"{sid} not in {[s.get('Sid') for s in policy['Statement']]}"
    return found[0]


def test_boundary_limits_regions_but_not_global_services() -> None:
    deny = statement(boundary(), "DenyOutsideAllowedRegions")
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1", "eu-central-1"]}}
    assert "iam:*" in deny["NotAction"] and "sts:*" in deny["NotAction"]
    assert "ec2:*" not in deny["NotAction"]


def test_boundary_limits_instance_types_and_database_classes() -> None:
    policy = boundary()
    run = statement(policy, "DenyInstanceTypes")
    assert run["Action"] == "ec2:RunInstances"
    assert run["Condition"] == {"StringNotLike": {"ec2:InstanceType": ["t3.micro", "t4g.*"]}}
    resize = statement(policy, "DenyResizingInstances")
    assert resize["Condition"] == {
        "StringNotLikeIfExists": {"ec2:Attribute/InstanceType": ["t3.micro", "t4g.*"]}
    }
    db = statement(policy, "DenyDatabaseClasses")
    assert db["Condition"] == {"StringNotLike": {"rds:DatabaseClass": ["db.t4g.micro"]}}
    assert "DenyDatabaseClasses" not in {s["Sid"] for s in boundary(("ec2",))["Statement"]}


def test_boundary_allows_only_the_units_services() -> None:
    allow = statement(boundary(("ec2", "s3")), "AllowUnitServices")
    assert allow["Effect"] == "Allow"
    assert {"ec2:*", "s3:*", "sts:GetCallerIdentity"} <= set(allow["Action"])
    assert "rds:*" not in allow["Action"] and "iam:*" not in allow["Action"]


def test_boundary_requires_owner_cohort_expiry_tags_on_create() -> None:
    policy = boundary()
    for key in aws_policies.MANDATORY_TAGS:
        deny = statement(policy, f"DenyCreateWithout{key.capitalize()}Tag")
        assert deny["Condition"] == {"Null": {f"aws:RequestTag/{key}": "true"}}
        assert "ec2:RunInstances" in deny["Action"] and "rds:CreateDBInstance" in deny["Action"]
    owner = statement(policy, "DenyCreateForAnotherOwner")
    assert owner["Condition"] == {"StringNotEquals": {"aws:RequestTag/owner": "ada"}}
    untag = statement(policy, "DenyRemovingMandatoryTags")
    assert "ec2:DeleteTags" in untag["Action"]


def test_boundary_cannot_be_escaped_and_ends_at_expiry() -> None:
    policy = boundary()
    create = statement(policy, "DenyIdentitiesWithoutBoundary")
    assert {"iam:CreateUser", "iam:CreateRole"} <= set(create["Action"])
    assert create["Condition"]["StringNotLike"]["iam:PermissionsBoundary"].endswith(
        "policy/labenv/labenv-boundary-labenv-ada-week17"
    )
    assert statement(policy, "DenyBoundaryRemoval")["Effect"] == "Deny"
    assert statement(policy, "DenyLabenvIdentityChanges")["Resource"][0] == "arn:aws:iam::*:user/labenv/*"
    expiry = statement(policy, "DenyAfterExpiry")
    assert expiry == {
        "Sid": "DenyAfterExpiry",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": EXPIRY}},
    }


def test_state_bucket_is_reachable_without_the_s3_service() -> None:
    policy = boundary(("ec2",), bucket="labenv-x-tfstate")
    bucket = statement(policy, "AllowStateBucket")
    assert bucket["Resource"] == ["arn:aws:s3:::labenv-x-tfstate", "arn:aws:s3:::labenv-x-tfstate/*"]
    identity = aws_policies.identity_policy(("ec2",), ("eu-west-1",), "labenv-x-tfstate")
    assert statement(identity, "AllowStateBucket") == bucket


def test_every_catalog_sandbox_fits_the_managed_policy_size_limit() -> None:
    catalog = default_catalog()
    checked = 0
    for course in catalog.courses.values():
        for unit in course.units:
            wanted = tuple(s for need in unit.cloud if need.provider == "aws" for s in need.services)
            if not wanted:
                continue
            prefixes = services.aws_prefixes(wanted)
            size = aws_policies.policy_size(boundary(prefixes, bucket="b" * 63))
            assert size <= aws_policies.MAX_MANAGED_POLICY_CHARS, f"{course.slug}/{unit.id}: {size}"
            checked += 1
    assert checked >= 10


def test_every_catalog_cloud_service_maps_to_aws_or_gcp() -> None:
    for course in default_catalog().courses.values():
        for unit in course.units:
            for need in unit.cloud:
                if need.provider == "aws":
                    services.aws_prefixes(need.services)
                elif need.provider == "gcp":
                    services.gcp_apis_and_roles(need.services)


def test_an_unknown_service_is_an_error_naming_it() -> None:
    with pytest.raises(CloudConfigError, match="'quantum-ledger' has no AWS mapping"):
        services.aws_prefixes(("s3", "quantum-ledger"))
    with pytest.raises(CloudConfigError, match="'quantum-ledger' has no GCP mapping"):
        services.gcp_apis_and_roles(("quantum-ledger",))


def test_short_names_keep_limits_and_stay_distinct() -> None:
    a = naming.short("labenv", "x" * 80, "tfstate", max_len=63)
    b = naming.short("labenv", "x" * 80, "tfstatf", max_len=63)
    assert len(a) <= 63 and len(b) <= 63 and a != b
    assert naming.short("Lab_Env", "Ada..Week 17", max_len=63) == "lab-env-ada-week-17"


def test_session_stack_names_round_trip() -> None:
    stack = naming.session_stack("labenv", "ada-week17")
    assert stack == "session.labenv.ada-week17"
    assert naming.parse_session_stack(stack) == ("labenv", "ada-week17")
    assert naming.parse_session_stack("cluster.aws.labenv") is None
    assert naming.parse_session_stack("session.only") is None


def test_gcp_label_values_are_valid() -> None:
    assert naming.label_value("2026-10-01T18:00:00Z") == "2026-10-01t18-00-00z"
    assert len(naming.label_value("x" * 100)) <= 63


def test_node_pool_grows_with_the_cohort() -> None:
    per = Capacity(cpu_millis=1000, memory_mib=2048)
    small = node_pool_size(10, per, "m7i.xlarge")
    large = node_pool_size(60, per, "m7i.xlarge")
    assert small.desired < large.desired
    # 60 x 1000m + 1500m platform over 4000m x 0.9 x 0.8 usable per node = 21.4 -> 22 nodes.
    assert large.desired == 22
    assert large.minimum <= large.desired <= large.maximum
    assert node_pool_size(1, per, "m7i.xlarge").desired == MIN_NODES


def test_node_pool_respects_memory_bound_labs_and_istio() -> None:
    heavy = Capacity(cpu_millis=100, memory_mib=8192)
    # 20 x 8192 + 3072 MiB over 16384 x 0.8 x 0.8 = 15.9 -> 16 nodes (CPU alone would need 2).
    assert node_pool_size(20, heavy, "m7i.xlarge").desired == 16
    plain = node_pool_size(30, Capacity(cpu_millis=1000, memory_mib=1024), "e2-standard-4")
    mesh = node_pool_size(30, Capacity(cpu_millis=1000, memory_mib=1024), "e2-standard-4", istio=True)
    assert mesh.desired >= plain.desired


def test_unknown_machine_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="size unknown"):
        node_pool_size(3, Capacity(cpu_millis=1, memory_mib=1), "x9.mega")
