"""Managed counterparts of in-cluster components on AWS: postgres -> RDS, object-store -> S3.

Each returns the settings the in-cluster component publishes (same names, see
environments/components/*/component.yaml), so a unit's labs work unchanged, plus a few extras
(PGSSLMODE, S3_BUCKET_<NAME>: S3 bucket names are global, so `lake` becomes `<prefix>-<session>-lake`).
Nothing is public: RDS is private, in the admin's subnets, reachable on 5432 from the cluster's
ranges only; buckets block public access.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pulumi
import pulumi_aws as aws

from labenv.cloud import aws_policies, naming
from labenv.cloud.aws_buckets import secure_bucket
from labenv.cloud.config import AwsSettings, ObjectStoreSpec, Ownership, PostgresSpec

Outputs = dict[str, pulumi.Input[str]]
PG_USER = "lab"  # the in-cluster component's user (PGUSER: lab)


def aws_postgres(
    spec: PostgresSpec, settings: AwsSettings, ownership: Ownership, provider: aws.Provider
) -> Outputs:
    opts = pulumi.ResourceOptions(provider=provider)
    tags = ownership.tags()
    name = naming.short("labenv", ownership.slug, max_len=63)
    subnets = aws.rds.SubnetGroup(
        "postgres-subnets",
        name=name,
        description=f"labenv postgres of {ownership.session}",
        subnet_ids=list(settings.subnet_ids),
        tags=tags,
        opts=opts,
    )
    firewall = aws.ec2.SecurityGroup(
        "postgres-firewall",
        name=name,
        description="labenv postgres: 5432 from the labenv cluster only",
        vpc_id=settings.vpc_id,
        ingress=[
            {
                "protocol": "tcp",
                "from_port": 5432,
                "to_port": 5432,
                "cidr_blocks": list(settings.client_cidrs),
                "description": "the labenv cluster",
            }
        ],
        egress=[],
        tags=tags,
        opts=opts,
    )
    major = settings.postgres_version.split(".")[0]
    parameters: list[aws.rds.ParameterGroupParameterArgsDict] = [{"name": "rds.force_ssl", "value": "1"}]
    if spec.preload_libraries:
        parameters.append(
            {
                "name": "shared_preload_libraries",
                "value": ",".join(spec.preload_libraries),
                "apply_method": "pending-reboot",
            }
        )
    params = aws.rds.ParameterGroup(
        "postgres-parameters",
        name=name,
        family=f"postgres{major}",
        parameters=parameters,
        tags=tags,
        opts=opts,
    )
    password = pulumi.Output.secret(spec.password.get_secret_value())
    database = aws.rds.Instance(
        "postgres",
        identifier=name,
        engine="postgres",
        engine_version=settings.postgres_version,
        instance_class=settings.postgres_instance_class,
        allocated_storage=20,
        storage_type="gp3",
        storage_encrypted=True,
        db_name=spec.database,
        username=PG_USER,
        password=password,
        db_subnet_group_name=subnets.name,
        vpc_security_group_ids=[firewall.id],
        parameter_group_name=params.name,
        publicly_accessible=False,
        multi_az=False,
        backup_retention_period=1,
        # A lab database is disposable: destroy must never stop at a snapshot or a protection flag.
        skip_final_snapshot=True,
        deletion_protection=False,
        delete_automated_backups=True,
        apply_immediately=True,
        auto_minor_version_upgrade=True,
        copy_tags_to_snapshot=True,
        tags=tags,
        opts=opts,
    )
    port = database.port.apply(str)
    url = pulumi.Output.all(database.address, port).apply(
        lambda parts: (
            f"postgresql://{PG_USER}:{quote(spec.password.get_secret_value(), safe='')}"
            f"@{parts[0]}:{parts[1]}/{spec.database}?sslmode=require"
        )
    )
    return {
        "DATABASE_URL": pulumi.Output.secret(url),
        "PGHOST": database.address,
        "PGPORT": port,
        "PGUSER": PG_USER,
        "PGPASSWORD": password,
        "PGDATABASE": spec.database,
        "PGSSLMODE": "require",
    }


def aws_object_store(
    spec: ObjectStoreSpec, settings: AwsSettings, ownership: Ownership, provider: aws.Provider
) -> Outputs:
    opts = pulumi.ResourceOptions(provider=provider)
    tags = ownership.tags()
    buckets = {
        logical: secure_bucket(
            f"objects-{logical}",
            naming.short(settings.bucket_prefix, ownership.slug, logical, max_len=63),
            tags,
            provider,
        )
        for logical in spec.buckets
    }
    arns = [bucket.arn for bucket in buckets.values()]
    access = aws.iam.Policy(
        "objects-access",
        name=f"labenv-objects-{ownership.slug}",
        path=aws_policies.IAM_PATH,
        description=f"labenv object store of {ownership.session}: its buckets only",
        policy=pulumi.Output.all(*arns).apply(
            lambda found: json.dumps(aws_policies.bucket_access_policy(list(found)))
        ),
        tags=tags,
        opts=opts,
    )
    user = aws.iam.User(
        "objects-user",
        name=naming.short("labenv-os", ownership.slug, max_len=64),
        path=aws_policies.IAM_PATH,
        # The access policy is also the boundary: this identity can never do more than its buckets.
        permissions_boundary=access.arn,
        force_destroy=True,
        tags=tags,
        opts=opts,
    )
    aws.iam.UserPolicyAttachment("objects-access", user=user.name, policy_arn=access.arn, opts=opts)
    key = aws.iam.AccessKey("objects-key", user=user.name, opts=opts)
    endpoint = f"https://s3.{settings.region}.amazonaws.com"
    outputs: Outputs = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "S3_ENDPOINT": endpoint,
        "AWS_ACCESS_KEY_ID": key.id,
        "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(key.secret),
        "AWS_REGION": settings.region,
        "AWS_DEFAULT_REGION": settings.region,
        # S3 Tables' Iceberg REST endpoint (SigV4-signed, unlike the in-cluster catalog).
        "ICEBERG_REST_URI": f"https://s3tables.{settings.region}.amazonaws.com/iceberg",
    }
    for logical, bucket in buckets.items():
        outputs[f"S3_BUCKET_{naming.env_name(logical)}"] = bucket.bucket
    return outputs
