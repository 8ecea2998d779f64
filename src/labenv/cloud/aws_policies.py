"""IAM policy documents for AWS sandboxes, as plain dicts (pure: tested without Pulumi).

The learner's IAM user gets two managed policies: an identity policy granting the unit's services
in the allowed regions, and a permission boundary that caps whatever the learner is ever granted
(including by roles and users the learner creates, which must carry the same boundary):

- only the unit's services, only in the allowed regions (aws:RequestedRegion; global services
  such as IAM and STS are exempt from the region rule, as AWS documents for region guardrails);
- only the allowed instance types (ec2:InstanceType) and database classes (rds:DatabaseClass);
- no reservations, savings plans, dedicated hosts or domain purchases;
- resources the learner creates must carry owner/cohort/expiry tags, owner set to the learner,
  where AWS evaluates aws:RequestTag on create (EC2, RDS, Lambda, SQS, Secrets Manager, DynamoDB);
  the mandatory tags cannot be removed; EC2/RDS resources of others cannot be changed;
- no escape: the boundary cannot be removed or edited, labenv's own identities (path /labenv/)
  and budgets cannot be changed, new users and roles need this boundary;
- nothing at all after the session's expiry (aws:CurrentTime), even if the teardown failed.

A managed policy is limited to 6,144 characters without whitespace; `policy_size` measures it.
"""

from __future__ import annotations

import json
from typing import Any

from labenv.cloud.services import AWS_BASELINE_ACTIONS

Policy = dict[str, Any]

IAM_PATH = "/labenv/"
MANDATORY_TAGS = ("owner", "cohort", "expiry")
MAX_MANAGED_POLICY_CHARS = 6144

# Actions exempt from the region rule: global services whose calls arrive in us-east-1.
GLOBAL_ACTIONS: tuple[str, ...] = (
    "iam:*",
    "sts:*",
    "budgets:*",
    "ce:*",
    "cur:*",
    "cloudfront:*",
    "route53:*",
    "organizations:Describe*",
    "support:*",
    "health:*",
    "pricing:*",
    "savingsplans:*",
    "s3:ListAllMyBuckets",
    "s3:GetAccountPublic*",
    "ec2:DescribeRegions",
)

# Creates where AWS evaluates aws:RequestTag: (action, the resource ARN patterns it tags).
TAG_ON_CREATE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ec2": (
        ("ec2:RunInstances", "ec2:CreateVolume", "ec2:CreateVpc", "ec2:CreateSecurityGroup"),
        (
            "arn:aws:ec2:*:*:instance/*",
            "arn:aws:ec2:*:*:volume/*",
            "arn:aws:ec2:*:*:vpc/*",
            "arn:aws:ec2:*:*:security-group/*",
        ),
    ),
    "rds": (
        ("rds:CreateDBInstance", "rds:CreateDBCluster"),
        ("arn:aws:rds:*:*:db:*", "arn:aws:rds:*:*:cluster:*"),
    ),
    "lambda": (("lambda:CreateFunction",), ("arn:aws:lambda:*:*:function:*",)),
    "sqs": (("sqs:CreateQueue",), ("arn:aws:sqs:*:*:*",)),
    "secretsmanager": (("secretsmanager:CreateSecret",), ("arn:aws:secretsmanager:*:*:secret:*",)),
    "dynamodb": (("dynamodb:CreateTable",), ("arn:aws:dynamodb:*:*:table/*",)),
}

UNTAG_ACTIONS: dict[str, str] = {
    "ec2": "ec2:DeleteTags",
    "rds": "rds:RemoveTagsFromResource",
    "lambda": "lambda:UntagResource",
    "sqs": "sqs:UntagQueue",
    "secretsmanager": "secretsmanager:UntagResource",
    "dynamodb": "dynamodb:UntagResource",
}

# Changes to existing resources allowed only on those the learner owns (aws:ResourceTag/owner).
OWNED_ACTIONS: dict[str, tuple[str, ...]] = {
    "ec2": ("ec2:TerminateInstances", "ec2:StopInstances", "ec2:ModifyInstanceAttribute"),
    "rds": ("rds:DeleteDBInstance", "rds:ModifyDBInstance"),
}

EXPENSIVE_ACTIONS: tuple[str, ...] = (
    "ec2:PurchaseReservedInstancesOffering",
    "ec2:PurchaseHostReservation",
    "ec2:PurchaseScheduledInstances",
    "ec2:AllocateHosts",
    "ec2:PurchaseCapacityBlock",
    "rds:PurchaseReservedDBInstancesOffering",
    "elasticache:PurchaseReservedCacheNodesOffering",
    "savingsplans:CreateSavingsPlan",
    "route53domains:*",
)


def policy_size(document: Policy) -> int:
    """Characters as IAM counts them for the managed-policy limit (whitespace excluded)."""
    return len(json.dumps(document, separators=(",", ":")))


def boundary_name(slug: str) -> str:
    return f"labenv-boundary-{slug}"


def boundary_arn_pattern(slug: str) -> str:
    # Any account: a principal can only attach a boundary from its own account (or AWS-managed).
    return f"arn:aws:iam::*:policy{IAM_PATH}{boundary_name(slug)}"


def _allow_services(prefixes: tuple[str, ...]) -> Policy:
    return {
        "Sid": "AllowUnitServices",
        "Effect": "Allow",
        "Action": sorted({f"{p}:*" for p in prefixes} | set(AWS_BASELINE_ACTIONS)),
        "Resource": "*",
    }


def _allow_state_bucket(bucket: str) -> Policy:
    """Terraform/Pulumi state in the session's bucket, even when the unit does not teach S3."""
    return {
        "Sid": "AllowStateBucket",
        "Effect": "Allow",
        "Action": [
            "s3:ListBucket",
            "s3:GetBucketVersioning",
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
        ],
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
    }


def _deny_outside_regions(regions: tuple[str, ...]) -> Policy:
    return {
        "Sid": "DenyOutsideAllowedRegions",
        "Effect": "Deny",
        "NotAction": list(GLOBAL_ACTIONS),
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:RequestedRegion": list(regions)}},
    }


def identity_policy(
    prefixes: tuple[str, ...], regions: tuple[str, ...], state_bucket: str | None = None
) -> Policy:
    """What the learner may do: the unit's services in the allowed regions (and the state bucket)."""
    statements = [_allow_services(prefixes)]
    if state_bucket:
        statements.append(_allow_state_bucket(state_bucket))
    return {"Version": "2012-10-17", "Statement": [*statements, _deny_outside_regions(regions)]}


def boundary_policy(
    *,
    slug: str,
    owner: str,
    expiry: str,
    prefixes: tuple[str, ...],
    regions: tuple[str, ...],
    instance_types: tuple[str, ...],
    db_instance_classes: tuple[str, ...],
    state_bucket: str | None = None,
) -> Policy:
    """The permission boundary of the learner's user and of every identity the learner creates."""
    statements: list[Policy] = [_allow_services(prefixes)]
    if state_bucket:
        statements.append(_allow_state_bucket(state_bucket))
    statements.append(_deny_outside_regions(regions))
    statements.append(
        {
            "Sid": "DenyInstanceTypes",
            "Effect": "Deny",
            "Action": "ec2:RunInstances",
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {"StringNotLike": {"ec2:InstanceType": list(instance_types)}},
        }
    )
    statements.append(
        {
            "Sid": "DenyResizingInstances",
            "Effect": "Deny",
            "Action": "ec2:ModifyInstanceAttribute",
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {"StringNotLikeIfExists": {"ec2:Attribute/InstanceType": list(instance_types)}},
        }
    )
    if "rds" in prefixes:
        statements.append(
            {
                "Sid": "DenyDatabaseClasses",
                "Effect": "Deny",
                "Action": ["rds:CreateDBInstance", "rds:ModifyDBInstance", "rds:CreateDBInstanceReadReplica"],
                "Resource": "*",
                "Condition": {"StringNotLike": {"rds:DatabaseClass": list(db_instance_classes)}},
            }
        )
    statements.append(
        {"Sid": "DenyPurchases", "Effect": "Deny", "Action": list(EXPENSIVE_ACTIONS), "Resource": "*"}
    )
    statements.extend(_tag_policy(owner, prefixes))
    statements.extend(_no_escape(slug))
    statements.append(
        {
            "Sid": "DenyAfterExpiry",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": expiry}},
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}


def _tag_policy(owner: str, prefixes: tuple[str, ...]) -> list[Policy]:
    taggable = [TAG_ON_CREATE[p] for p in prefixes if p in TAG_ON_CREATE]
    if not taggable:
        return []
    actions = sorted({a for acts, _ in taggable for a in acts})
    resources = sorted({r for _, arns in taggable for r in arns})
    statements: list[Policy] = [
        {
            "Sid": f"DenyCreateWithout{key.capitalize()}Tag",
            "Effect": "Deny",
            "Action": actions,
            "Resource": resources,
            "Condition": {"Null": {f"aws:RequestTag/{key}": "true"}},
        }
        for key in MANDATORY_TAGS
    ]
    statements.append(
        {
            "Sid": "DenyCreateForAnotherOwner",
            "Effect": "Deny",
            "Action": actions,
            "Resource": resources,
            "Condition": {"StringNotEquals": {"aws:RequestTag/owner": owner}},
        }
    )
    untag = sorted(UNTAG_ACTIONS[p] for p in prefixes if p in UNTAG_ACTIONS)
    statements.append(
        {
            "Sid": "DenyRemovingMandatoryTags",
            "Effect": "Deny",
            "Action": untag,
            "Resource": "*",
            "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": list(MANDATORY_TAGS)}},
        }
    )
    others = [a for p, acts in OWNED_ACTIONS.items() if p in prefixes for a in acts]
    if others:
        statements.append(
            {
                "Sid": "DenyChangingOthersResources",
                "Effect": "Deny",
                "Action": others,
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:ResourceTag/owner": owner}},
            }
        )
    return statements


def _no_escape(slug: str) -> list[Policy]:
    boundary = boundary_arn_pattern(slug)
    return [
        {
            "Sid": "DenyBoundaryRemoval",
            "Effect": "Deny",
            "Action": ["iam:DeleteUserPermissionsBoundary", "iam:DeleteRolePermissionsBoundary"],
            "Resource": "*",
        },
        {
            "Sid": "DenyIdentitiesWithoutBoundary",
            "Effect": "Deny",
            "Action": [
                "iam:CreateUser",
                "iam:CreateRole",
                "iam:PutUserPermissionsBoundary",
                "iam:PutRolePermissionsBoundary",
            ],
            "Resource": "*",
            "Condition": {"StringNotLike": {"iam:PermissionsBoundary": boundary}},
        },
        {
            "Sid": "DenyLabenvIdentityChanges",
            "Effect": "Deny",
            "NotAction": ["iam:GetUser", "iam:ListAccessKeys"],
            "Resource": [
                f"arn:aws:iam::*:user{IAM_PATH}*",
                f"arn:aws:iam::*:role{IAM_PATH}*",
                f"arn:aws:iam::*:policy{IAM_PATH}*",
            ],
        },
        {
            "Sid": "DenyBudgetChanges",
            "Effect": "Deny",
            "Action": [
                "budgets:ModifyBudget",
                "budgets:DeleteBudgetAction",
                "budgets:UpdateBudgetAction",
                "budgets:ExecuteBudgetAction",
            ],
            "Resource": "*",
        },
    ]


def bucket_access_policy(bucket_arns: list[str]) -> Policy:
    """The managed object store's identity: its buckets and nothing else (also its boundary)."""
    objects = [f"{arn}/*" for arn in bucket_arns]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ListOwnBuckets", "Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
            {"Sid": "OwnBuckets", "Effect": "Allow", "Action": "s3:*", "Resource": [*bucket_arns, *objects]},
            {
                "Sid": "NoBucketPolicyOrDeletion",
                "Effect": "Deny",
                "Action": [
                    "s3:PutBucketPolicy",
                    "s3:DeleteBucketPolicy",
                    "s3:PutBucketPublicAccessBlock",
                    "s3:PutBucketAcl",
                    "s3:PutObjectAcl",
                    "s3:DeleteBucket",
                ],
                "Resource": [*bucket_arns, *objects],
            },
        ],
    }


def tls_only_bucket_policy(bucket_arn: str) -> Policy:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


DENY_ALL: Policy = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "BudgetExhausted", "Effect": "Deny", "Action": "*", "Resource": "*"}],
}


def assume_role_policy(service: str) -> Policy:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def budget_action_policy(deny_all_arn_pattern: str) -> Policy:
    """What AWS Budgets may do with its execution role: attach the deny-all policy to labenv users."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iam:AttachUserPolicy", "iam:DetachUserPolicy"],
                "Resource": f"arn:aws:iam::*:user{IAM_PATH}*",
                "Condition": {"ArnLike": {"iam:PolicyARN": deny_all_arn_pattern}},
            }
        ],
    }
