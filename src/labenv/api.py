"""The LabSession resource as Python models, shared by the CLI and the operator.

The CRD schema in `charts/labenv/crds/` is the admission-time contract; these models parse what
the API server already accepted and build what labenv writes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from labenv import names
from labenv.errors import InvalidInput

MAX_TTL = timedelta(days=30)
DEFAULT_TTL = "8h"
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_DURATION = re.compile(r"^(\d+[smhd])+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, field: str = "ttl", maximum: timedelta = MAX_TTL) -> timedelta:
    """`8h`, `90m`, `2d`, `1h30m` -> timedelta; zero, negative, malformed or absurd is an error."""
    if not _DURATION.match(text or ""):
        raise InvalidInput(f"{field}: {text!r} is not a duration such as 8h, 90m or 2d")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise InvalidInput(f"{field}: {text!r} must be longer than zero")
    if seconds > maximum.total_seconds():
        raise InvalidInput(f"{field}: {text!r} is longer than the maximum of {format_duration(maximum)}")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """timedelta -> the Go-style duration the CRD stores (`48h`, `90m`)."""
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


class Phase(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    READY = "Ready"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class Overrides(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # component -> options merged over the unit's (a component not in the unit is added)
    components: dict[str, dict[str, Any]] = {}


# A cloud variant: components with a managed counterpart (postgres, object-store) are provisioned in
# that cloud instead of the namespace, and the unit's cloud needs are served there (docs/cloud.md).
Variant = Literal["aws", "gcp"]


class SessionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    learner: str
    course: str
    unit: str
    ttl: str = DEFAULT_TTL
    overrides: Overrides = Overrides()
    variant: Variant | None = None


class Condition(BaseModel):
    """A status condition as the Kubernetes API conventions define it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""
    observed_generation: int = Field(default=0, alias="observedGeneration")
    last_transition_time: str = Field(default="", alias="lastTransitionTime")


class EndpointStatus(BaseModel):
    model_config = ConfigDict(frozen=True)
    component: str
    name: str
    host: str
    port: int
    url: str


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def session_body(name: str, namespace: str, spec: SessionSpec) -> dict[str, Any]:
    """A LabSession object as the CLI creates it."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.SESSION_KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                names.LABEL_LEARNER: spec.learner,
                names.LABEL_COURSE: spec.course,
                names.LABEL_UNIT: spec.unit,
            },
        },
        "spec": spec.model_dump(by_alias=True, exclude_defaults=False, exclude_none=True),
    }


class CohortLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    max_ttl: str = Field(default="720h", alias="maxTtl")


class CohortSpec(BaseModel):
    """A LabCohort's spec: who, which unit, for how long, how many warm sessions."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    instructor: str = ""
    course: str
    unit: str
    learners: tuple[str, ...] = ()
    ttl: str | None = None
    ends_at: str | None = Field(default=None, alias="endsAt")
    warm_pool: int = Field(default=0, alias="warmPool", ge=0, le=50)
    limits: CohortLimits = CohortLimits()
    variant: Variant | None = None


def cohort_body(name: str, namespace: str, spec: CohortSpec) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.COHORT_KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {names.LABEL_COURSE: spec.course, names.LABEL_PART_OF: "labenv"},
        },
        "spec": spec.model_dump(by_alias=True, exclude_none=True),
    }
