"""The per-learner AWS sandbox: a bounded IAM user, a budget with alerts (and a hard stop), buckets.

Creates, for one session:
- `aws.iam.Policy` boundary + identity policy (see `aws_policies`), both under path /labenv/;
- `aws.iam.User` with the boundary attached, the identity policy attached, and an access key;
- `aws.budgets.Budget` on the session's cost-allocation tag, e-mail alerts at the configured
  thresholds of actual spend and at 100% forecast; with `hard_stop`, a `BudgetAction` that
  attaches a deny-all policy to the user at 100% (its execution role may do only that);
- a versioned, encrypted, private state bucket when the unit uses Terraform/Pulumi.

Every taggable resource carries owner/cohort/expiry (and managed-by, labenv-session) tags.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from labenv.cloud import aws_policies, naming
from labenv.cloud.aws_buckets import secure_bucket
from labenv.cloud.config import AwsSettings, Ownership, SandboxSpec
from labenv.cloud.services import aws_prefixes

Outputs = dict[str, pulumi.Input[str]]


def state_bucket_name(settings: AwsSettings, ownership: Ownership) -> str:
    return naming.short(settings.bucket_prefix, ownership.slug, "tfstate", max_len=63)


def aws_sandbox(
    spec: SandboxSpec, settings: AwsSettings, ownership: Ownership, provider: aws.Provider
) -> Outputs:
    opts = pulumi.ResourceOptions(provider=provider)
    tags = ownership.tags()
    slug = ownership.slug
    prefixes = aws_prefixes(spec.services)
    bucket_name = state_bucket_name(settings, ownership) if spec.state_bucket else None

    boundary = aws.iam.Policy(
        "sandbox-boundary",
        name=aws_policies.boundary_name(slug),
        path=aws_policies.IAM_PATH,
        description=f"labenv permission boundary of {ownership.session}",
        policy=json.dumps(
            aws_policies.boundary_policy(
                slug=slug,
                owner=ownership.owner,
                expiry=ownership.expiry_text,
                prefixes=prefixes,
                regions=settings.regions,
                instance_types=settings.instance_types,
                db_instance_classes=settings.db_instance_classes,
                state_bucket=bucket_name,
            )
        ),
        tags=tags,
        opts=opts,
    )
    identity = aws.iam.Policy(
        "sandbox-identity",
        name=f"labenv-identity-{slug}",
        path=aws_policies.IAM_PATH,
        description=f"labenv sandbox permissions of {ownership.session}",
        policy=json.dumps(aws_policies.identity_policy(prefixes, settings.regions, bucket_name)),
        tags=tags,
        opts=opts,
    )
    user = aws.iam.User(
        "sandbox-learner",
        name=naming.short("labenv", slug, max_len=64),
        path=aws_policies.IAM_PATH,
        permissions_boundary=boundary.arn,
        force_destroy=True,
        tags=tags,
        opts=opts,
    )
    aws.iam.UserPolicyAttachment("sandbox-identity", user=user.name, policy_arn=identity.arn, opts=opts)
    key = aws.iam.AccessKey("sandbox-learner-key", user=user.name, opts=opts)
    budget = sandbox_budget(settings, ownership, provider)
    if settings.hard_stop:
        hard_stop(budget, user, settings, ownership, provider)

    outputs: Outputs = {
        "AWS_ACCESS_KEY_ID": key.id,
        "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(key.secret),
        "AWS_REGION": settings.region,
        "AWS_DEFAULT_REGION": settings.region,
        "LABENV_CLOUD_BUDGET": budget.name,
    }
    if bucket_name:
        bucket = secure_bucket("sandbox-state", bucket_name, tags, provider)
        outputs["TF_STATE_BUCKET"] = bucket.bucket
    return {f"{spec.output_prefix}{key_}": value for key_, value in outputs.items()}


def sandbox_budget(settings: AwsSettings, ownership: Ownership, provider: aws.Provider) -> aws.budgets.Budget:
    """Monthly cost budget filtered on the session's `labenv-session` cost-allocation tag."""
    emails = list(settings.alert_emails)
    notifications: list[aws.budgets.BudgetNotificationArgsDict] = [
        {
            "comparison_operator": "GREATER_THAN",
            "threshold": float(threshold),
            "threshold_type": "PERCENTAGE",
            "notification_type": "ACTUAL",
            "subscriber_email_addresses": emails,
        }
        for threshold in settings.alert_thresholds
    ]
    notifications.append(
        {
            "comparison_operator": "GREATER_THAN",
            "threshold": 100.0,
            "threshold_type": "PERCENTAGE",
            "notification_type": "FORECASTED",
            "subscriber_email_addresses": emails,
        }
    )
    return aws.budgets.Budget(
        "sandbox-budget",
        name=f"labenv-{ownership.slug}",
        budget_type="COST",
        limit_amount=str(settings.budget_usd),
        limit_unit="USD",
        time_unit="MONTHLY",
        cost_filters=[{"name": "TagKeyValue", "values": [f"user:labenv-session${ownership.session}"]}],
        notifications=notifications,
        tags=ownership.tags(),
        opts=pulumi.ResourceOptions(provider=provider),
    )


def hard_stop(
    budget: aws.budgets.Budget,
    user: aws.iam.User,
    settings: AwsSettings,
    ownership: Ownership,
    provider: aws.Provider,
) -> aws.budgets.BudgetAction:
    """At 100% of actual spend AWS Budgets attaches a deny-all policy to the learner's user."""
    opts = pulumi.ResourceOptions(provider=provider)
    tags = ownership.tags()
    deny_name = f"labenv-deny-all-{ownership.slug}"
    deny_all = aws.iam.Policy(
        "sandbox-deny-all",
        name=deny_name,
        path=aws_policies.IAM_PATH,
        description="Attached by AWS Budgets when the sandbox budget is spent",
        policy=json.dumps(aws_policies.DENY_ALL),
        tags=tags,
        opts=opts,
    )
    role = aws.iam.Role(
        "sandbox-budget-action",
        name=naming.short("labenv-budget", ownership.slug, max_len=64),
        path=aws_policies.IAM_PATH,
        assume_role_policy=json.dumps(aws_policies.assume_role_policy("budgets.amazonaws.com")),
        tags=tags,
        opts=opts,
    )
    aws.iam.RolePolicy(
        "sandbox-budget-action",
        role=role.id,
        policy=json.dumps(
            aws_policies.budget_action_policy(f"arn:aws:iam::*:policy{aws_policies.IAM_PATH}{deny_name}")
        ),
        opts=opts,
    )
    return aws.budgets.BudgetAction(
        "sandbox-hard-stop",
        budget_name=budget.name,
        action_type="APPLY_IAM_POLICY",
        approval_model="AUTOMATIC",
        notification_type="ACTUAL",
        action_threshold={"action_threshold_type": "PERCENTAGE", "action_threshold_value": 100.0},
        definition={"iam_action_definition": {"policy_arn": deny_all.arn, "users": [user.name]}},
        execution_role_arn=role.arn,
        subscribers=[{"address": email, "subscription_type": "EMAIL"} for email in settings.alert_emails],
        tags=tags,
        opts=opts,
    )
