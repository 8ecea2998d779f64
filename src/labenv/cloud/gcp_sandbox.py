"""The per-learner GCP sandbox: a project per session under the admin's folder.

A project is GCP's natural boundary (IAM, quotas, billing, deletion), so each session gets one:
- `gcp.organizations.Project` under the folder, on the billing account, labelled, no default
  network, deleted (not abandoned) on destroy;
- the unit's APIs (`gcp.projects.Service`);
- limits: org policy `gcp.resourceLocations` (allowed regions), a Compute Engine vCPU quota per
  allowed region (the size limit), and, when the admin created one, a custom machine-type constraint;
- a service account for the learner with the unit's predefined roles in that project only, each
  binding under an IAM condition that ends at the session's expiry, and a key;
- a billing budget on the project with e-mail alerts (a budget alerts, it does not stop spend);
- a versioned, private state bucket when the unit uses Terraform/Pulumi.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import pulumi
import pulumi_gcp as gcp

from labenv.cloud import naming
from labenv.cloud.config import GcpSettings, Ownership, SandboxSpec
from labenv.cloud.gcp_buckets import secure_bucket
from labenv.cloud.services import gcp_apis_and_roles

Outputs = dict[str, pulumi.Input[str]]


def project_id(ownership: Ownership) -> str:
    # 6-30 characters, starts with a letter; ids stay reserved for 30 days after deletion, so the
    # expiry is part of the hash: a session recreated the same day still gets a fresh id.
    return naming.short("lab", ownership.slug, naming.digest(ownership.expiry_text, 4), max_len=30)


def gcp_sandbox(
    spec: SandboxSpec, settings: GcpSettings, ownership: Ownership, provider: gcp.Provider
) -> Outputs:
    opts = pulumi.ResourceOptions(provider=provider)
    labels = ownership.labels()
    apis, roles = gcp_apis_and_roles(spec.services)
    pid = project_id(ownership)
    project = gcp.organizations.Project(
        "sandbox-project",
        project_id=pid,
        name=pid,
        folder_id=settings.folder,
        billing_account=settings.billing_account,
        auto_create_network=False,
        deletion_policy="DELETE",
        labels=labels,
        opts=opts,
    )
    in_project = pulumi.ResourceOptions(provider=provider, depends_on=[project])
    enabled = [
        gcp.projects.Service(
            f"sandbox-api-{api.split('.')[0]}",
            project=pid,
            service=api,
            disable_on_destroy=False,
            opts=in_project,
        )
        for api in apis
    ]
    after_apis = pulumi.ResourceOptions(provider=provider, depends_on=[project, *enabled])
    gcp.orgpolicy.Policy(
        "sandbox-locations",
        name=f"projects/{pid}/policies/gcp.resourceLocations",
        parent=f"projects/{pid}",
        spec={
            "rules": [
                {"values": {"allowed_values": [f"in:{region}-locations" for region in settings.regions]}}
            ]
        },
        opts=after_apis,
    )
    if settings.machine_type_constraint:
        gcp.orgpolicy.Policy(
            "sandbox-machine-types",
            name=f"projects/{pid}/policies/{settings.machine_type_constraint}",
            parent=f"projects/{pid}",
            spec={"rules": [{"enforce": "TRUE"}]},
            opts=after_apis,
        )
    if "compute.googleapis.com" in apis:
        for region in settings.regions:
            gcp.serviceusage.ConsumerQuotaOverride(
                f"sandbox-cpus-{region}",
                project=pid,
                service="compute.googleapis.com",
                metric=quote("compute.googleapis.com/cpus", safe=""),
                limit=quote("/project/region", safe=""),
                dimensions={"region": region},
                override_value=str(settings.max_cpus_per_region),
                force=True,
                opts=after_apis,
            )
    learner = gcp.serviceaccount.Account(
        "sandbox-learner",
        project=pid,
        account_id="learner",
        display_name=f"labenv learner {ownership.owner}",
        description=f"labenv sandbox identity of {ownership.session} until {ownership.expiry_text}",
        opts=after_apis,
    )
    member = learner.email.apply(lambda email: f"serviceAccount:{email}")
    until_expiry: gcp.projects.IAMMemberConditionArgsDict = {
        "title": "until-session-expiry",
        "description": "labenv: access ends when the session expires, even if teardown failed",
        "expression": f'request.time < timestamp("{ownership.expiry_text}")',
    }
    for role in roles:
        gcp.projects.IAMMember(
            f"sandbox-role-{role.removeprefix('roles/').replace('.', '-')}",
            project=pid,
            role=role,
            member=member,
            condition=until_expiry,
            opts=after_apis,
        )
    key = gcp.serviceaccount.Key("sandbox-learner-key", service_account_id=learner.name, opts=after_apis)
    budget = sandbox_budget(settings, ownership, project, provider)
    outputs: Outputs = {
        "GOOGLE_CREDENTIALS": pulumi.Output.secret(
            key.private_key.apply(lambda b64: base64.b64decode(b64).decode())
        ),
        "GOOGLE_CLOUD_PROJECT": pid,
        "CLOUDSDK_CORE_PROJECT": pid,
        "CLOUDSDK_COMPUTE_REGION": settings.region,
        "GOOGLE_REGION": settings.region,
        "LABENV_CLOUD_BUDGET": budget.display_name.apply(lambda name: name or ""),
    }
    if spec.state_bucket:
        bucket = secure_bucket(
            "sandbox-state",
            naming.short(settings.bucket_prefix, ownership.slug, "tfstate", max_len=63),
            pid,
            settings.region,
            labels,
            provider,
        )
        outputs["TF_STATE_BUCKET"] = bucket.name
    return {f"{spec.output_prefix}{name}": value for name, value in outputs.items()}


def sandbox_budget(
    settings: GcpSettings, ownership: Ownership, project: gcp.organizations.Project, provider: gcp.Provider
) -> gcp.billing.Budget:
    """A monthly budget on the learner's project, e-mailing the admins at each threshold."""
    opts = pulumi.ResourceOptions(provider=provider)
    channels = [
        gcp.monitoring.NotificationChannel(
            f"sandbox-alert-{index}",
            project=settings.project,
            type="email",
            display_name=f"labenv budget {ownership.slug} {index}",
            labels={"email_address": email},
            user_labels=ownership.labels(),
            opts=opts,
        )
        for index, email in enumerate(settings.alert_emails)
    ]
    rules: list[gcp.billing.BudgetThresholdRuleArgsDict] = [
        {"threshold_percent": threshold / 100} for threshold in settings.alert_thresholds
    ]
    rules.append({"threshold_percent": 1.0, "spend_basis": "FORECASTED_SPEND"})
    return gcp.billing.Budget(
        "sandbox-budget",
        billing_account=settings.billing_account,
        display_name=f"labenv {ownership.slug}"[:60],
        budget_filter={
            "projects": [project.number.apply(lambda n: f"projects/{n}")],
            "calendar_period": "MONTH",
        },
        amount={"specified_amount": {"currency_code": "USD", "units": str(settings.budget_usd)}},
        threshold_rules=rules,
        all_updates_rule={
            "monitoring_notification_channels": [channel.id for channel in channels],
            "disable_default_iam_recipients": False,
        },
        opts=opts,
    )
