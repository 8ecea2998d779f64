"""Managed counterparts on GCP: postgres -> Cloud SQL (private IP), object-store -> GCS with HMAC keys.

Same setting names as the in-cluster components. GCS speaks the S3 XML API at
storage.googleapis.com with HMAC keys of a service account that may use only the session's
buckets; AWS_REGION is `auto`. Cloud SQL has no public IP (ipv4_enabled false, no authorized
networks) and accepts encrypted connections only.
"""

from __future__ import annotations

from urllib.parse import quote

import pulumi
import pulumi_gcp as gcp

from labenv.cloud import naming
from labenv.cloud.config import GcpSettings, ObjectStoreSpec, Ownership, PostgresSpec
from labenv.cloud.gcp_buckets import secure_bucket

Outputs = dict[str, pulumi.Input[str]]
PG_USER = "lab"
GCS_ENDPOINT = "https://storage.googleapis.com"


def gcp_postgres(
    spec: PostgresSpec, settings: GcpSettings, ownership: Ownership, provider: gcp.Provider
) -> Outputs:
    opts = pulumi.ResourceOptions(provider=provider)
    # Instance names stay reserved for a week after deletion: the expiry hash keeps them fresh.
    name = naming.short("labenv", ownership.slug, naming.digest(ownership.expiry_text, 4), max_len=80)
    instance = gcp.sql.DatabaseInstance(
        "postgres",
        name=name,
        project=settings.project,
        region=settings.region,
        database_version=settings.postgres_version,
        # A lab database is disposable: destroy must never stop at a protection flag.
        deletion_protection=False,
        settings={
            "tier": settings.sql_tier,
            "edition": "ENTERPRISE",
            "availability_type": "ZONAL",
            "disk_size": 10,
            "disk_autoresize": True,
            "deletion_protection_enabled": False,
            "user_labels": ownership.labels(),
            "backup_configuration": {"enabled": False},
            "ip_configuration": {
                "ipv4_enabled": False,
                "private_network": settings.network,
                "ssl_mode": "ENCRYPTED_ONLY",
                "authorized_networks": [],
            },
        },
        opts=opts,
    )
    child = pulumi.ResourceOptions(provider=provider, parent=instance)
    for database in (spec.database, *spec.extra_databases):
        gcp.sql.Database(
            f"postgres-db-{database}",
            name=database,
            instance=instance.name,
            project=settings.project,
            opts=child,
        )
    password = pulumi.Output.secret(spec.password.get_secret_value())
    gcp.sql.User(
        "postgres-user",
        name=PG_USER,
        password=password,
        instance=instance.name,
        project=settings.project,
        opts=child,
    )
    url = instance.private_ip_address.apply(
        lambda host: (
            f"postgresql://{PG_USER}:{quote(spec.password.get_secret_value(), safe='')}"
            f"@{host}:5432/{spec.database}?sslmode=require"
        )
    )
    return {
        "DATABASE_URL": pulumi.Output.secret(url),
        "PGHOST": instance.private_ip_address,
        "PGPORT": "5432",
        "PGUSER": PG_USER,
        "PGPASSWORD": password,
        "PGDATABASE": spec.database,
        "PGSSLMODE": "require",
    }


def gcp_object_store(
    spec: ObjectStoreSpec, settings: GcpSettings, ownership: Ownership, provider: gcp.Provider
) -> Outputs:
    opts = pulumi.ResourceOptions(provider=provider)
    labels = ownership.labels()
    account = gcp.serviceaccount.Account(
        "objects-account",
        project=settings.project,
        account_id=naming.short("os", ownership.slug, max_len=30),
        display_name=f"labenv object store {ownership.slug}"[:100],
        opts=opts,
    )
    member = account.email.apply(lambda email: f"serviceAccount:{email}")
    outputs: Outputs = {}
    for logical in spec.buckets:
        bucket = secure_bucket(
            f"objects-{logical}",
            naming.short(settings.bucket_prefix, ownership.slug, logical, max_len=63),
            settings.project,
            settings.region,
            labels,
            provider,
        )
        # objectAdmin for objects; legacyBucketReader for the bucket calls S3 clients make (list, location).
        for role in ("roles/storage.objectAdmin", "roles/storage.legacyBucketReader"):
            gcp.storage.BucketIAMMember(
                f"objects-{logical}-{role.rsplit('.', 1)[-1]}",
                bucket=bucket.name,
                role=role,
                member=member,
                opts=pulumi.ResourceOptions(provider=provider, parent=bucket),
            )
        outputs[f"S3_BUCKET_{naming.env_name(logical)}"] = bucket.name
    hmac = gcp.storage.HmacKey(
        "objects-hmac", project=settings.project, service_account_email=account.email, opts=opts
    )
    return {
        "AWS_ENDPOINT_URL": GCS_ENDPOINT,
        "AWS_ENDPOINT_URL_S3": GCS_ENDPOINT,
        "S3_ENDPOINT": GCS_ENDPOINT,
        "AWS_ACCESS_KEY_ID": hmac.access_id,
        "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(hmac.secret),
        "AWS_REGION": "auto",
        "AWS_DEFAULT_REGION": "auto",
        # BigLake's Iceberg REST catalog (OAuth, unlike the in-cluster catalog).
        "ICEBERG_REST_URI": "https://biglake.googleapis.com/iceberg/v1/restcatalog",
        **outputs,
    }
