"""What instructors do with LabCohorts: read a cohort file, apply, follow, advance, extend, delete.

Everything that can be checked offline (names, duplicates, units, durations) is checked before the
API is called, so a bad file changes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import getpass
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from labenv import api, names
from labenv.catalog.loader import Catalog
from labenv.errors import InvalidInput, LabenvError, NotFound
from labenv.kube.client import ApiError, Kube

Obj = dict[str, Any]
MAX_COHORT_NAME = 18


def read_learners(path: Path) -> tuple[str, ...]:
    """One learner per row (first column; a `learner` header is skipped); errors name the line."""
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except OSError as exc:
        raise InvalidInput(f"learners: cannot read {path}: {exc.strerror}") from exc
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        value = (row[0] if row else "").strip()
        if not value or value.startswith("#") or (number == 1 and value.lower() in ("learner", "name")):
            continue
        try:
            names.check_learner(value)
        except InvalidInput as exc:
            raise InvalidInput(f"{path} line {number}: {exc}") from None
        if value in seen:
            raise InvalidInput(f"{path} line {number}: learner {value!r} is already on line {seen[value]}")
        seen[value] = number
    return tuple(seen)


def check_spec(catalog: Catalog, name: str, spec: api.CohortSpec) -> api.CohortSpec:
    if not names.DNS_LABEL.match(name) or len(name) > MAX_COHORT_NAME:
        raise InvalidInput(f"name: {name!r} must be a DNS-1123 label of at most {MAX_COHORT_NAME} characters")
    catalog.resolve(spec.unit, catalog.course(spec.course).slug)
    if not spec.learners and not spec.warm_pool:
        raise InvalidInput("learners: the list is empty and there is no warm pool either")
    duplicates = sorted({x for x in spec.learners if spec.learners.count(x) > 1})
    if duplicates:
        raise InvalidInput(f"learners: listed more than once: {', '.join(duplicates)}")
    for learner in spec.learners:
        names.check_learner(learner)
        if len(names.cohort_session_name(name, learner)) > 59:
            raise InvalidInput(f"learners: {learner!r} makes the session name too long for cohort {name!r}")
    if spec.ttl and spec.ends_at:
        raise InvalidInput("ttl: set ttl or endsAt, not both")
    if spec.ttl:
        api.parse_duration(spec.ttl, "ttl")
    if spec.ends_at:
        try:
            ends = api.parse_timestamp(spec.ends_at)
        except ValueError:
            raise InvalidInput(f"endsAt: {spec.ends_at!r} is not a time like 2026-12-20T18:00:00Z") from None
        if ends <= api.now():
            raise InvalidInput(f"endsAt: {spec.ends_at} is in the past")
    api.parse_duration(spec.limits.max_ttl, "limits.maxTtl")
    return spec


def load_file(catalog: Catalog, path: Path) -> tuple[str, api.CohortSpec]:
    """A cohort file: `name`, `course`, `unit`, `learners` or `learnersFile`, `ttl` or `endsAt`,
    `warmPool`, `limits`; or a LabCohort manifest."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: cannot be read as YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping with name, course, unit and learners")
    if data.get("kind") == names.COHORT_KIND:
        name, fields = data.get("metadata", {}).get("name", ""), dict(data.get("spec") or {})
    else:
        name, fields = data.pop("name", ""), data
    if "learnersFile" in fields:
        fields["learners"] = read_learners(path.parent / str(fields.pop("learnersFile")))
    fields.setdefault("course", catalog.default_course)
    fields.setdefault("instructor", default_instructor())
    try:
        spec = api.CohortSpec.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
    return str(name), check_spec(catalog, str(name), spec)


def default_instructor() -> str:
    return names.normalise_learner(getpass.getuser()) or "instructor"


async def apply(kube: Kube, namespace: str, name: str, spec: api.CohortSpec) -> Obj:
    """Create or update the cohort; refuse to take over another instructor's cohort."""
    existing = await kube.get(names.API_VERSION, names.COHORT_KIND, name, namespace)
    if existing is not None:
        owner = (existing.get("spec") or {}).get("instructor", "")
        if owner and spec.instructor and owner != spec.instructor:
            raise InvalidInput(f"name: cohort {name!r} belongs to instructor {owner!r}; choose another name")
        if (existing.get("spec") or {}).get("course") != spec.course:
            raise InvalidInput(f"course: cohort {name!r} is a {existing['spec']['course']} cohort")
    try:
        result: Obj = await kube.apply(api.cohort_body(name, namespace, spec), names.CLI_FIELD_MANAGER)
    except ApiError as exc:
        if exc.status == 422:
            raise InvalidInput(str(exc).split(": ", 2)[-1]) from exc
        raise
    return result


async def get(kube: Kube, namespace: str, name: str) -> Obj:
    found = await kube.get(names.API_VERSION, names.COHORT_KIND, name, namespace)
    if found is None:
        raise NotFound(f"cohort: {name!r} not found in namespace {namespace!r}")
    return found


async def members(kube: Kube, namespace: str, name: str) -> list[Obj]:
    return sorted(
        await kube.list(
            names.API_VERSION, names.SESSION_KIND, namespace, label_selector=f"{names.LABEL_COHORT}={name}"
        ),
        key=lambda s: s["metadata"]["name"],
    )


async def follow(kube: Kube, namespace: str, name: str, timeout: float) -> AsyncIterator[Obj]:
    """The cohort each time its status changes, until it settles (Ready or Failed) or time runs out."""
    deadline = time.monotonic() + timeout
    generation = None
    while time.monotonic() < deadline:
        cohort = await get(kube, namespace, name)
        generation = cohort["metadata"].get("generation")
        yield cohort
        status = cohort.get("status") or {}
        if status.get("observedGeneration") == generation and status.get("phase") in ("Ready", "Failed"):
            return
        await asyncio.sleep(1.0)
    raise LabenvError(f"cohort {name!r} did not settle within {timeout:.0f}s")


async def advance(kube: Kube, catalog: Catalog, namespace: str, name: str, unit: str) -> Obj:
    cohort = await get(kube, namespace, name)
    course = cohort["spec"]["course"]
    if "/" in unit and unit.split("/", 1)[0] != course:
        raise InvalidInput(f"unit: {unit!r} is not in the cohort's course {course!r}")
    unit = unit.rpartition("/")[2]
    catalog.resolve(unit, course)
    result: Obj = await kube.merge_patch(
        names.API_VERSION, names.COHORT_KIND, name, {"spec": {"unit": unit}}, namespace
    )
    return result


async def extend(kube: Kube, namespace: str, name: str, by: str) -> Obj:
    """Push every session's expiry later: a longer ttl, or a later endsAt."""
    cohort = await get(kube, namespace, name)
    spec = api.CohortSpec.model_validate(cohort["spec"])
    delta = api.parse_duration(by, "by")
    if spec.ends_at:
        patch = {"spec": {"endsAt": api.timestamp(api.parse_timestamp(spec.ends_at) + delta)}}
    else:
        total = api.parse_duration(spec.ttl or api.DEFAULT_TTL, "ttl") + delta
        limit = api.parse_duration(spec.limits.max_ttl, "limits.maxTtl", maximum=timedelta(days=3650))
        if total > limit:
            raise InvalidInput(
                f"by: the ttl would become {api.format_duration(total)}, beyond the cohort's "
                f"maximum of {spec.limits.max_ttl}"
            )
        patch = {"spec": {"ttl": api.format_duration(total)}}
    result: Obj = await kube.merge_patch(names.API_VERSION, names.COHORT_KIND, name, patch, namespace)
    return result


async def delete(kube: Kube, namespace: str, name: str) -> None:
    await get(kube, namespace, name)
    await kube.delete(names.API_VERSION, names.COHORT_KIND, name, namespace, propagation="Background")
