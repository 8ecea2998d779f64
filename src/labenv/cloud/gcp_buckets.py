"""A GCS bucket as labenv creates them: uniform access, public access prevented, versioned, destroyable.

GCS encrypts every object at rest with Google-managed keys; no setting is needed for that.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp


def secure_bucket(
    name: str,
    bucket_name: str,
    project: pulumi.Input[str],
    location: str,
    labels: dict[str, str],
    provider: gcp.Provider,
) -> gcp.storage.Bucket:
    return gcp.storage.Bucket(
        name,
        name=bucket_name,
        project=project,
        location=location.upper(),
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning={"enabled": True},
        # A sandbox must always be destroyable, even with objects left in it; no billable soft-deleted copies.
        force_destroy=True,
        soft_delete_policy={"retention_duration_seconds": 0},
        lifecycle_rules=[{"action": {"type": "Delete"}, "condition": {"days_since_noncurrent_time": 90}}],
        labels=labels,
        opts=pulumi.ResourceOptions(provider=provider),
    )
