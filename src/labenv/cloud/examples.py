"""Example settings with documentation values (RFC 5737 ranges, zero ids): dry runs, tests, docs.

Nothing here names a real account; `labenv infra up --dry-run` without a config file uses them.
"""

from __future__ import annotations

from labenv.cloud.config import AwsSettings, CloudSettings, GcpSettings

EXAMPLE_AWS = AwsSettings(
    region="eu-west-1",
    alert_emails=("ops@example.org",),
    vpc_id="vpc-0123456789abcdef0",
    subnet_ids=("subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"),
    client_cidrs=("10.60.0.0/16",),
)

EXAMPLE_GCP = GcpSettings(
    region="europe-west1",
    billing_account="000000-000000-000000",
    folder_id="000000000000",
    project="labenv-example",
    alert_emails=("ops@example.org",),
    network="projects/labenv-example/global/networks/labenv",
)


def example_settings(runner: str = "mock") -> CloudSettings:
    return CloudSettings.model_validate(
        {
            "backend_url": "file://./.pulumi-state",
            "runner": runner,
            "aws": EXAMPLE_AWS.model_dump(),
            "gcp": EXAMPLE_GCP.model_dump(),
        }
    )
