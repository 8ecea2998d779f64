"""What a component is, as data: the metadata in `environments/components/<name>/component.yaml`.

A component knows no course. It declares its images, endpoints, the credentials to generate once per
session, the connection settings it publishes, the components it needs first, how its readiness is
judged, its default resources and the per-unit options it accepts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_STRICT = ConfigDict(extra="forbid", frozen=True)

COMPONENT_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"


class Generator(StrEnum):
    """How a credential is generated (once per session, never regenerated)."""

    PASSWORD = "password"  # URL-safe random text, usable in URLs without escaping
    HEX = "hex"  # lower-case hex, for keys and tokens
    KAFKA_CLUSTER_ID = "kafka-cluster-id"  # 16 random bytes, URL-safe base64 without padding


class Credential(BaseModel):
    model_config = _STRICT
    generate: Generator = Generator.PASSWORD
    length: int = Field(default=24, ge=8, le=128)


class Endpoint(BaseModel):
    """A Service port the learner connects to; published in session status (no secrets)."""

    model_config = _STRICT
    name: str
    service: str
    port: int = Field(ge=1, le=65535)
    scheme: str = "tcp"


class OptionSpec(BaseModel):
    """One per-unit option a component accepts (e.g. Kafka topics, Postgres databases)."""

    model_config = _STRICT
    type: Literal["string", "integer", "boolean", "list", "map"]
    default: Any = None
    description: str = ""


class Workload(BaseModel):
    """A workload whose status decides whether the component is ready."""

    model_config = _STRICT
    kind: Literal["Deployment", "StatefulSet", "Job"]
    name: str


class ResourceList(BaseModel):
    model_config = _STRICT
    cpu: str = "0"
    memory: str = "0"


class Resources(BaseModel):
    """Totals of all the component's pods, used to size the namespace's ResourceQuota."""

    model_config = _STRICT
    requests: ResourceList = ResourceList()
    limits: ResourceList = ResourceList()
    storage: str = "0"


class PodSecurityLevel(StrEnum):
    RESTRICTED = "restricted"
    BASELINE = "baseline"
    PRIVILEGED = "privileged"


class PodSecurity(BaseModel):
    """The Pod Security level a component's pods need; anything below `restricted` needs a reason."""

    model_config = _STRICT
    level: PodSecurityLevel = PodSecurityLevel.RESTRICTED
    reason: str | None = None


# What a component may let the learner do beyond labenv's base Role: lab work on its own API objects,
# never RBAC, quota, isolation or impersonation (those would let one learner out of the lab).
LEARNER_VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"})
_NEVER_TO_LEARNERS = frozenset(
    {"rbac.authorization.k8s.io", "networking.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io"}
)


class LearnerRule(BaseModel):
    """An RBAC rule the learner gets in the lab namespace when the unit has this component."""

    model_config = _STRICT
    api_groups: tuple[str, ...] = Field(min_length=1)
    resources: tuple[str, ...] = Field(min_length=1)
    verbs: tuple[str, ...] = Field(min_length=1)

    @field_validator("api_groups")
    @classmethod
    def _lab_apis_only(cls, groups: tuple[str, ...]) -> tuple[str, ...]:
        for group in groups:
            if group in ("", "*") or group in _NEVER_TO_LEARNERS:
                raise ValueError(f"{group or 'the core group'!r} is not a component's to grant")
        return groups

    @field_validator("resources")
    @classmethod
    def _named_resources(cls, resources: tuple[str, ...]) -> tuple[str, ...]:
        if "*" in resources:
            raise ValueError("'*': name the resources")
        return resources

    @field_validator("verbs")
    @classmethod
    def _lab_verbs_only(cls, verbs: tuple[str, ...]) -> tuple[str, ...]:
        if extra := set(verbs) - LEARNER_VERBS:
            raise ValueError(f"{sorted(extra)}: only {sorted(LEARNER_VERBS)}")
        return verbs

    def as_rbac(self) -> dict[str, list[str]]:
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }


class Component(BaseModel):
    model_config = _STRICT

    name: str = Field(pattern=COMPONENT_NAME_PATTERN)
    title: str
    description: str = ""
    images: dict[str, str] = {}
    depends_on: tuple[str, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    credentials: dict[str, Credential] = {}
    settings: dict[str, str] = {}
    options: dict[str, OptionSpec] = {}
    readiness: tuple[Workload, ...] = ()
    resources: Resources = Resources()
    pod_security: PodSecurity = PodSecurity()
    # Labels the component needs on the lab namespace (e.g. Istio sidecar injection).
    namespace_labels: dict[str, str] = {}
    # API group/versions the component's objects need from the cluster (e.g. Istio's CRDs); when
    # one is missing the component's condition says so instead of failing the whole session.
    requires_apis: tuple[str, ...] = ()
    learner_rules: tuple[LearnerRule, ...] = ()
    # False: the learner works inside what the component provides (a virtual cluster) and only reads
    # the lab namespace, so they cannot start a pod under the component's own ServiceAccount and
    # borrow rights the learner Role withholds (the vCluster syncer writes Endpoints and pod status).
    learner_writes_namespace: bool = True
    templates: tuple[str, ...] = ()

    @field_validator("images")
    @classmethod
    def _images_pinned(cls, images: dict[str, str]) -> dict[str, str]:
        for key, ref in images.items():
            tag = ref.rsplit("/", 1)[-1]
            if ":" not in tag and "@" not in ref:
                raise ValueError(f"images.{key}: {ref!r} has no tag; pin a real upstream tag")
            if tag.endswith(":latest"):
                raise ValueError(f"images.{key}: {ref!r} uses :latest; pin a real upstream tag")
        return images

    @field_validator("pod_security")
    @classmethod
    def _exception_has_reason(cls, value: PodSecurity) -> PodSecurity:
        if value.level != PodSecurityLevel.RESTRICTED and not value.reason:
            raise ValueError("pod_security.reason: required when the level is below 'restricted'")
        return value
