"""Typed inputs of the Pulumi programs and the admin's cloud settings (pydantic, no Pulumi import).

Admin settings (`CloudSettings`) come from a YAML file (`$LABENV_CLOUD_CONFIG`, or `--config`);
the program arguments (`SessionStackArgs`, `ClusterStackArgs`) are built by `lifecycle` and the
`labenv infra` CLI from those settings and the catalog, and are all a program reads.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from labenv.cloud import naming
from labenv.cloud.errors import CloudConfigError

_STRICT = ConfigDict(extra="forbid", frozen=True)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

CONFIG_ENV = "LABENV_CLOUD_CONFIG"
Cloud = Literal["aws", "gcp"]


def _emails(value: tuple[str, ...]) -> tuple[str, ...]:
    for email in value:
        if not _EMAIL.match(email):
            raise ValueError(f"{email!r} is not an e-mail address")
    return value


def _no_open_cidr(value: tuple[str, ...]) -> tuple[str, ...]:
    for cidr in value:
        network = ipaddress.ip_network(cidr, strict=False)
        if network.prefixlen == 0:
            raise ValueError(f"{cidr} opens the service to the whole internet; name the cluster's ranges")
    return value


class AwsSettings(BaseModel):
    """The admin's AWS choices; credentials come from the usual AWS environment, never from here."""

    model_config = _STRICT
    region: str = "eu-west-1"
    # Regions the learner may use (aws:RequestedRegion); empty means `region` only.
    allowed_regions: tuple[str, ...] = ()
    # EC2 instance types a learner may launch (ec2:InstanceType, wildcards allowed).
    instance_types: tuple[str, ...] = ("t3.micro", "t3.small", "t4g.micro", "t4g.small")
    # RDS instance classes a learner may create (rds:DatabaseClass).
    db_instance_classes: tuple[str, ...] = ("db.t4g.micro", "db.t3.micro")
    budget_usd: int = Field(default=25, ge=1, le=10_000)
    alert_thresholds: tuple[int, ...] = (50, 80, 100)
    alert_emails: tuple[str, ...] = Field(min_length=1)
    # At 100% of the actual spend, AWS Budgets attaches a deny-all policy to the learner (hard stop).
    hard_stop: bool = True
    # Prefix of every bucket name (S3 names are global: make it unique to your organisation).
    bucket_prefix: str = Field(default="labenv", pattern=_DNS_LABEL, max_length=20)
    # Managed services (RDS) live in the admin's VPC, reachable from the cluster only.
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    client_cidrs: tuple[str, ...] = ()
    postgres_instance_class: str = "db.t4g.micro"
    postgres_version: str = "18"

    _check_emails = field_validator("alert_emails")(_emails)
    _check_cidrs = field_validator("client_cidrs")(_no_open_cidr)

    @property
    def regions(self) -> tuple[str, ...]:
        return self.allowed_regions or (self.region,)


class GcpSettings(BaseModel):
    """The admin's GCP choices; credentials come from Application Default Credentials."""

    model_config = _STRICT
    region: str = "europe-west1"
    allowed_regions: tuple[str, ...] = ()
    billing_account: str
    # Learner projects are created under this folder (`folders/123` or `123`).
    folder_id: str
    # The project holding managed services (Cloud SQL, GCS) and the budget's notification channels.
    project: str
    budget_usd: int = Field(default=25, ge=1, le=10_000)
    alert_thresholds: tuple[int, ...] = (50, 80, 100)
    alert_emails: tuple[str, ...] = Field(min_length=1)
    # vCPUs a learner project may run per region (Compute Engine quota override): the size limit.
    max_cpus_per_region: int = Field(default=8, ge=1, le=96)
    # Optional custom org-policy constraint limiting machine types (created once by the org admin).
    machine_type_constraint: str | None = None
    bucket_prefix: str = Field(default="labenv", pattern=_DNS_LABEL, max_length=20)
    # VPC (self link or `projects/P/global/networks/N`) with private services access, for Cloud SQL.
    network: str | None = None
    sql_tier: str = "db-custom-1-3840"
    postgres_version: str = "POSTGRES_18"

    _check_emails = field_validator("alert_emails")(_emails)

    @property
    def regions(self) -> tuple[str, ...]:
        return self.allowed_regions or (self.region,)

    @property
    def folder(self) -> str:
        return self.folder_id if self.folder_id.startswith("folders/") else f"folders/{self.folder_id}"


class CloudSettings(BaseModel):
    """Everything an admin configures for the cloud layer (see docs/cloud.md)."""

    model_config = _STRICT
    # Pulumi state: `file:///var/lib/labenv/pulumi`, `s3://bucket/prefix`, `gs://bucket/prefix`.
    backend_url: str
    # The secrets provider passphrase is read from this environment variable (mounted from a Secret)...
    passphrase_env: str = "PULUMI_CONFIG_PASSPHRASE"
    # ...or from this file when set (a mounted Secret key).
    passphrase_file: str | None = None
    project: str = Field(default="labenv", pattern=_DNS_LABEL)
    # `mock` runs every program under Pulumi's mocks (demo, tests); `automation` drives the Pulumi CLI.
    runner: Literal["automation", "mock"] = "automation"
    pulumi_home: str | None = None
    aws: AwsSettings | None = None
    gcp: GcpSettings | None = None

    @field_validator("backend_url")
    @classmethod
    def _backend(cls, value: str) -> str:
        if not value.startswith(("file://", "s3://", "gs://", "azblob://", "https://")):
            raise ValueError(
                f"{value!r} is not a Pulumi backend URL (file://, s3://, gs://, azblob://, https://)"
            )
        return value

    def for_cloud(self, cloud: Cloud) -> AwsSettings | GcpSettings:
        found = self.aws if cloud == "aws" else self.gcp
        if found is None:
            raise CloudConfigError(f"cloud settings: no `{cloud}:` section; see docs/cloud.md")
        return found

    def passphrase(self) -> str:
        if self.passphrase_file:
            try:
                return Path(self.passphrase_file).read_text().strip()
            except OSError as exc:
                raise CloudConfigError(f"passphrase_file: {self.passphrase_file}: {exc.strerror}") from exc
        value = os.environ.get(self.passphrase_env, "")
        if not value:
            raise CloudConfigError(f"passphrase_env: ${self.passphrase_env} is empty; set it from a Secret")
        return value


def load_settings(path: str | Path | None = None) -> CloudSettings:
    """Settings from `path` or `$LABENV_CLOUD_CONFIG`; errors name the file and the field."""
    where = path or os.environ.get(CONFIG_ENV)
    if not where:
        raise CloudConfigError(f"cloud settings: set {CONFIG_ENV} or pass --config (see docs/cloud.md)")
    try:
        data = yaml.safe_load(Path(where).read_text())
    except OSError as exc:
        raise CloudConfigError(f"{where}: cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CloudConfigError(f"{where}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    try:
        return CloudSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise CloudConfigError(f"{where}: {field}: {err['msg']}") from exc


# --- program arguments ---------------------------------------------------------------------------


class Ownership(BaseModel):
    """Who a stack belongs to: the mandatory owner/cohort/expiry tags on every taggable resource."""

    model_config = _STRICT
    owner: str = Field(pattern=_DNS_LABEL, max_length=63)
    cohort: str = Field(default="none", pattern=_DNS_LABEL, max_length=63)
    expiry: datetime
    # `<namespace>.<name>` of the LabSession (or `cluster.<name>` for a bootstrap stack).
    session: str = Field(max_length=120)

    @field_validator("expiry")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone")
        return value.astimezone(UTC).replace(microsecond=0)

    @property
    def expiry_text(self) -> str:
        return self.expiry.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def slug(self) -> str:
        """A short name part unique to the session, for cloud resource names."""
        return naming.short(self.session.replace(".", "-"), max_len=40)

    def tags(self) -> dict[str, str]:
        """AWS tags (the keys the boundary's tag policy requires)."""
        return {
            "owner": self.owner,
            "cohort": self.cohort,
            "expiry": self.expiry_text,
            "managed-by": "labenv",
            "labenv-session": self.session,
        }

    def labels(self) -> dict[str, str]:
        """The same as GCP labels (lower-case values, no ':' or '.')."""
        return {key: naming.label_value(value) for key, value in self.tags().items()}


class SandboxSpec(BaseModel):
    """A learner's own cloud identity, limited, budgeted and tagged."""

    model_config = _STRICT
    # Catalog service names (`ec2`, `s3`, `cloud-sql`, ...): see `labenv.cloud.services`.
    services: tuple[str, ...]
    # A versioned, encrypted, private bucket for Terraform/Pulumi state (units that use IaC tools).
    state_bucket: bool = False
    # Prefix of the published setting names (`CLOUD_`) when an in-namespace component already
    # publishes the same names (e.g. the in-cluster object store's AWS_ACCESS_KEY_ID).
    output_prefix: str = ""


class PostgresSpec(BaseModel):
    model_config = _STRICT
    database: str = Field(default="lab", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    # More databases (Cloud SQL creates them through its API; RDS cannot, see lifecycle.cloud_plan).
    extra_databases: tuple[str, ...] = ()
    # shared_preload_libraries (RDS parameter group); Cloud SQL preloads pg_stat_statements itself.
    preload_libraries: tuple[str, ...] = ()
    # The session's generated `postgres-password` (created once by the reconciler, never rotated).
    password: SecretStr


class ObjectStoreSpec(BaseModel):
    model_config = _STRICT
    buckets: tuple[str, ...] = ()


class SessionStackArgs(BaseModel):
    """Everything one session's stack holds: a sandbox and/or managed components, on one cloud."""

    model_config = _STRICT
    kind: Literal["session"] = "session"
    cloud: Cloud
    ownership: Ownership
    sandbox: SandboxSpec | None = None
    postgres: PostgresSpec | None = None
    object_store: ObjectStoreSpec | None = None
    aws: AwsSettings | None = None
    gcp: GcpSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SessionStackArgs:
        if self.sandbox is None and self.postgres is None and self.object_store is None:
            raise ValueError("a session stack needs a sandbox or a managed component")
        if (self.aws if self.cloud == "aws" else self.gcp) is None:
            raise ValueError(f"{self.cloud}: settings are required for a {self.cloud} stack")
        if self.postgres is not None and self.cloud == "aws":
            for field in ("vpc_id", "subnet_ids", "client_cidrs"):
                if not getattr(self.aws, field, None):
                    raise ValueError(
                        f"aws.{field}: managed postgres (RDS) needs it (the admin's VPC, reachable "
                        "from the cluster)"
                    )
        if self.postgres is not None and self.cloud == "gcp" and not (self.gcp and self.gcp.network):
            raise ValueError(
                "gcp.network: managed postgres (Cloud SQL) needs a VPC with private services access"
            )
        return self


class Capacity(BaseModel):
    """CPU (millicores) and memory (MiB)."""

    model_config = _STRICT
    cpu_millis: int = Field(ge=0)
    memory_mib: int = Field(ge=0)


class ClusterStackArgs(BaseModel):
    """A cluster to run labenv on, sized for a cohort."""

    model_config = _STRICT
    kind: Literal["cluster"] = "cluster"
    cloud: Cloud
    name: str = Field(pattern=_DNS_LABEL, max_length=30)
    ownership: Ownership
    learners: int = Field(ge=1, le=2000)
    # Requests of one learner's heaviest lab (sum of the unit's components plus headroom).
    per_learner: Capacity
    machine_type: str
    kubernetes_version: str = "1.35"
    istio: bool = False
    # CIDRs allowed to reach the Kubernetes API (the admins' networks); never 0.0.0.0/0.
    admin_cidrs: tuple[str, ...] = Field(min_length=1)
    # Principals given cluster-admin (EKS access entries); GKE uses IAM instead.
    admin_principals: tuple[str, ...] = ()
    chart_path: str = "charts/labenv"
    chart_values: dict[str, Any] = {}
    aws: AwsSettings | None = None
    gcp: GcpSettings | None = None

    _check_cidrs = field_validator("admin_cidrs")(_no_open_cidr)


ProgramArgs = Annotated[SessionStackArgs | ClusterStackArgs, Field(discriminator="kind")]
