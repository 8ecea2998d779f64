"""Courses and units as data: the files in `environments/courses/`."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from labenv.components.model import Component

_STRICT = ConfigDict(extra="forbid", frozen=True)

UNIT_ID_PATTERN = r"^[a-z][a-z0-9-]{0,22}[a-z0-9]$"
COURSE_SLUG_PATTERN = r"^[a-z][a-z0-9-]{0,22}[a-z0-9]$"


class SupportMode(StrEnum):
    """How labenv serves a unit."""

    NATIVE = "native"  # everything the labs need runs in the learner's namespace
    STRATEGY = "strategy"  # served through a named strategy (e.g. a per-learner virtual cluster)
    UNSUPPORTED = "unsupported"  # a namespace cannot give what the labs need; `start` refuses


class Support(BaseModel):
    model_config = _STRICT
    mode: SupportMode = SupportMode.NATIVE
    strategy: str | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _explained(self) -> Support:
        if self.mode == SupportMode.STRATEGY and not self.strategy:
            raise ValueError("support.strategy: required when mode is 'strategy'")
        if self.mode != SupportMode.NATIVE and not self.reason:
            raise ValueError("support.reason: required when mode is not 'native'")
        return self


class CloudNeed(BaseModel):
    """A cloud resource a unit's labs need; served by the cloud-variant programs."""

    model_config = _STRICT
    provider: str
    services: tuple[str, ...] = ()
    notes: str = ""


class Unit(BaseModel):
    model_config = _STRICT
    id: str = Field(pattern=UNIT_ID_PATTERN)
    title: str
    aliases: tuple[str, ...] = ()
    # component name -> the options this unit sets for it
    components: dict[str, dict[str, Any]] = {}
    tools: tuple[str, ...] = ()
    cloud: tuple[CloudNeed, ...] = ()
    checks: tuple[str, ...] = ()
    support: Support = Support()
    notes: str = ""


class Course(BaseModel):
    model_config = _STRICT
    slug: str = Field(pattern=COURSE_SLUG_PATTERN)
    title: str
    source: str = ""
    units: tuple[Unit, ...]


class ResolvedUnit(BaseModel):
    """A unit with its components looked up and options defaulted, in dependency order."""

    model_config = ConfigDict(frozen=True)
    course: Course
    unit: Unit
    components: tuple[Component, ...]
    options: dict[str, dict[str, Any]]
