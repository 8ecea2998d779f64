"""What a catalog service name (`cloud: [{provider: aws, services: [ec2, s3]}]`) grants in each cloud.

AWS: IAM action prefixes for the sandbox's identity policy and permission boundary. GCP: the APIs
enabled in the learner's project and the predefined roles bound (with an expiry condition) to the
learner's service account. A name that is not here is an error naming it, so a new course cannot
silently get a sandbox without the service its labs need (a unit test checks every catalog entry).
"""

from __future__ import annotations

from labenv.cloud.errors import CloudConfigError

AWS_ACTION_PREFIXES: dict[str, tuple[str, ...]] = {
    "ec2": ("ec2",),
    "ebs": ("ec2",),
    "spot": ("ec2",),
    "vpc": ("ec2",),
    "subnets": ("ec2",),
    "security-groups": ("ec2",),
    "autoscaling": ("autoscaling", "ec2"),
    "elb": ("elasticloadbalancing",),
    "alb": ("elasticloadbalancing",),
    "s3": ("s3",),
    "iam": ("iam",),
    "rds": ("rds",),
    "cloudwatch": ("cloudwatch", "logs"),
    "lambda": ("lambda", "logs"),
    "lambda-edge": ("lambda", "cloudfront"),
    "cloudfront": ("cloudfront",),
    "cloudformation": ("cloudformation",),
    "eks": ("eks",),
    "ecs": ("ecs",),
    "ecr": ("ecr",),
    "codebuild": ("codebuild",),
    "elasticache": ("elasticache",),
    "sqs": ("sqs",),
    "sns": ("sns",),
    "dynamodb": ("dynamodb",),
    "secrets-manager": ("secretsmanager",),
    "resource-groups-tagging": ("tag",),
    "cost-explorer": ("ce",),
    "cur": ("cur",),
    "reserved-instances": ("ec2",),
    "savings-plans": ("savingsplans",),
    "spot-price-history": ("ec2",),
}

# Actions every sandbox identity may call whatever the unit (who am I, which regions exist).
AWS_BASELINE_ACTIONS: tuple[str, ...] = ("sts:GetCallerIdentity", "ec2:DescribeRegions", "iam:GetUser")

# service -> (APIs to enable, roles to grant in the learner's own project)
GCP_SERVICES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "compute-engine": (("compute.googleapis.com",), ("roles/compute.admin", "roles/iam.serviceAccountUser")),
    "managed-instance-groups": (("compute.googleapis.com",), ("roles/compute.admin",)),
    "vpc": (("compute.googleapis.com",), ("roles/compute.networkAdmin",)),
    "vpc-firewall": (("compute.googleapis.com",), ("roles/compute.securityAdmin",)),
    "firewall-rules": (("compute.googleapis.com",), ("roles/compute.securityAdmin",)),
    "cloud-load-balancing": (("compute.googleapis.com",), ("roles/compute.loadBalancerAdmin",)),
    "gcs": (("storage.googleapis.com",), ("roles/storage.admin",)),
    "cloud-sql": (("sqladmin.googleapis.com",), ("roles/cloudsql.admin",)),
    "iam": (("iam.googleapis.com",), ("roles/iam.serviceAccountAdmin", "roles/iam.roleAdmin")),
    "bigquery": (("bigquery.googleapis.com",), ("roles/bigquery.admin",)),
    "cloud-functions": (
        ("cloudfunctions.googleapis.com", "run.googleapis.com", "cloudbuild.googleapis.com"),
        ("roles/cloudfunctions.admin", "roles/run.admin", "roles/iam.serviceAccountUser"),
    ),
    "gke": (("container.googleapis.com",), ("roles/container.admin",)),
    "cloud-monitoring": (("monitoring.googleapis.com",), ("roles/monitoring.admin",)),
    "secret-manager": (("secretmanager.googleapis.com",), ("roles/secretmanager.admin",)),
    "cloud-cdn": (("compute.googleapis.com",), ("roles/compute.loadBalancerAdmin",)),
    "billing-export": (("bigquery.googleapis.com",), ("roles/bigquery.dataViewer",)),
    "billing-export-bigquery": (("bigquery.googleapis.com",), ("roles/bigquery.dataViewer",)),
    "memorystore": (("redis.googleapis.com",), ("roles/redis.admin",)),
    "cloud-build": (("cloudbuild.googleapis.com",), ("roles/cloudbuild.builds.editor",)),
    "artifact-registry": (("artifactregistry.googleapis.com",), ("roles/artifactregistry.admin",)),
}

# APIs every learner project gets (the budget, quotas and IAM need them).
GCP_BASELINE_APIS: tuple[str, ...] = ("serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com")


def aws_prefixes(services: tuple[str, ...]) -> tuple[str, ...]:
    """IAM action prefixes for `services`, sorted and unique."""
    found: set[str] = set()
    for service in services:
        prefixes = AWS_ACTION_PREFIXES.get(service)
        if prefixes is None:
            raise CloudConfigError(
                f"cloud.services: {service!r} has no AWS mapping in labenv.cloud.services (known: "
                f"{', '.join(sorted(AWS_ACTION_PREFIXES))})"
            )
        found.update(prefixes)
    return tuple(sorted(found))


def gcp_apis_and_roles(services: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(APIs, roles) for `services`, sorted and unique; the baseline APIs included."""
    apis: set[str] = set(GCP_BASELINE_APIS)
    roles: set[str] = set()
    for service in services:
        entry = GCP_SERVICES.get(service)
        if entry is None:
            raise CloudConfigError(
                f"cloud.services: {service!r} has no GCP mapping in labenv.cloud.services (known: "
                f"{', '.join(sorted(GCP_SERVICES))})"
            )
        apis.update(entry[0])
        roles.update(entry[1])
    return tuple(sorted(apis)), tuple(sorted(roles))
