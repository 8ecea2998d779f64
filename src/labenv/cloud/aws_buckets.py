"""An S3 bucket as labenv creates them: private, versioned, encrypted, TLS-only, destroyable."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from labenv.cloud.aws_policies import tls_only_bucket_policy


def secure_bucket(name: str, bucket_name: str, tags: dict[str, str], provider: aws.Provider) -> aws.s3.Bucket:
    """Bucket + ownership controls, public access block, versioning, SSE, lifecycle and a TLS-only policy.

    `force_destroy` is on: a sandbox must always be destroyable, even with objects (and versions)
    left in it. Non-current versions expire after 90 days so an active state bucket stays small.
    """
    opts = pulumi.ResourceOptions(provider=provider)
    bucket = aws.s3.Bucket(name, bucket=bucket_name, force_destroy=True, tags=tags, opts=opts)
    child = pulumi.ResourceOptions(provider=provider, parent=bucket)
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
    )
    block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketVersioning(
        f"{name}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[
            {
                "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                "bucket_key_enabled": True,
            }
        ],
        opts=child,
    )
    aws.s3.BucketLifecycleConfiguration(
        f"{name}-lifecycle",
        bucket=bucket.id,
        rules=[
            {
                "id": "expire-noncurrent-versions",
                "status": "Enabled",
                "filter": {},
                "noncurrent_version_expiration": {"noncurrent_days": 90},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }
        ],
        opts=child,
    )
    aws.s3.BucketPolicy(
        f"{name}-tls-only",
        bucket=bucket.id,
        policy=bucket.arn.apply(lambda arn: json.dumps(tls_only_bucket_policy(arn))),
        # The public access block first: a policy applied before it could briefly be evaluated alone.
        opts=pulumi.ResourceOptions(provider=provider, parent=bucket, depends_on=[block]),
    )
    return bucket
