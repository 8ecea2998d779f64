"""What the CLI does with LabSessions: create or find, wait, read credentials, stop.

Validation happens here before anything is written, so bad input leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from labenv import api, names
from labenv.catalog.loader import Catalog
from labenv.errors import ClusterUnavailable, InvalidInput, LabenvError, NotFound
from labenv.kube.client import ApiError, Kube
from labenv.reconcile import cloud

Obj = dict[str, Any]


@dataclass(frozen=True)
class StartRequest:
    unit: str
    learner: str
    course: str | None
    ttl: str
    variant: api.Variant | None = None


@dataclass(frozen=True)
class Started:
    session: Obj
    created: bool
    claimed: bool = False


def plan_session(catalog: Catalog, request: StartRequest) -> tuple[str, api.SessionSpec]:
    """Check everything that can be checked offline; return the session name and spec."""
    course, _ = catalog.find_units(request.unit, request.course)
    unit_id = request.unit.rpartition("/")[2]
    resolved = catalog.resolve(unit_id, course.slug)  # refuses unsupported units
    learner = names.check_learner(request.learner)
    ttl = api.format_duration(api.parse_duration(request.ttl))
    spec = api.SessionSpec(
        learner=learner, course=course.slug, unit=unit_id, ttl=ttl, variant=request.variant
    )
    cloud.plan(resolved, spec)  # refuses a variant the unit cannot run with
    name = names.session_name(learner, course.slug, unit_id, catalog.default_course)
    if len(name) > 59:
        raise InvalidInput(f"learner: {learner!r} makes the session name {name!r} longer than 59 characters")
    return name, spec


async def require_crd(kube: Kube) -> None:
    if not await kube.served(names.API_VERSION):
        raise ClusterUnavailable(
            f"the LabSession CRD is not installed on {kube.host}: "
            "run `labenv install` (or install the Helm chart)"
        )


async def start(kube: Kube, namespace: str, name: str, spec: api.SessionSpec) -> Started:
    """Return the learner's session for this unit (their own or their cohort's), else hand them a
    warm-pool session of a cohort on this unit, else create one."""
    await require_crd(kube)
    existing = await kube.get(names.API_VERSION, names.SESSION_KIND, name, namespace)
    if existing is not None:
        return Started(existing, created=False)
    mine = await kube.list(
        names.API_VERSION,
        names.SESSION_KIND,
        namespace,
        label_selector=(
            f"{names.LABEL_LEARNER}={spec.learner},{names.LABEL_COURSE}={spec.course},{names.LABEL_UNIT}={spec.unit}"
        ),
    )
    if mine:
        return Started(mine[0], created=False)
    claimed = await claim(kube, namespace, spec)
    if claimed is not None:
        return Started(claimed, created=False, claimed=True)
    if await kube.get("v1", "Namespace", namespace) is None:
        raise ClusterUnavailable(f"namespace: {namespace!r} does not exist; run `labenv install` first")
    try:
        created = await kube.create(api.session_body(name, namespace, spec), names.CLI_FIELD_MANAGER)
    except ApiError as exc:
        if exc.conflict:
            found = await kube.get(names.API_VERSION, names.SESSION_KIND, name, namespace)
            if found is not None:
                return Started(found, created=False)
        if exc.status == 422:
            raise InvalidInput(str(exc).split(": ", 2)[-1]) from exc
        raise
    return Started(created, created=True)


async def claim(kube: Kube, namespace: str, spec: api.SessionSpec) -> Obj | None:
    """Hand a ready warm-pool session on this unit to the learner: one patch, guarded by the
    session's resourceVersion so two learners never get the same one."""
    pool = await kube.list(
        names.API_VERSION,
        names.SESSION_KIND,
        namespace,
        label_selector=(
            f"{names.LABEL_POOL}=true,{names.LABEL_COURSE}={spec.course},{names.LABEL_UNIT}={spec.unit}"
        ),
    )
    pool.sort(key=lambda s: (phase_of(s) != "Ready", s["metadata"]["name"]))
    for candidate in pool:
        if candidate.get("spec", {}).get("variant") != spec.variant:
            continue  # in the namespace or in a cloud: what the learner asked for
        meta = candidate["metadata"]
        patch = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "labels": {names.LABEL_LEARNER: spec.learner, names.LABEL_POOL: None},
            },
            "spec": {"learner": spec.learner},
        }
        try:
            return await kube.merge_patch(
                names.API_VERSION, names.SESSION_KIND, meta["name"], patch, namespace
            )
        except ApiError as exc:
            if not exc.conflict:  # someone else claimed it first: try the next one
                raise
    return None


async def extend(kube: Kube, session: Obj, by: str) -> Obj:
    """A longer ttl, within the session's cohort's maximum (or labenv's 30 days)."""
    meta, spec = session["metadata"], session["spec"]
    limit = api.MAX_TTL
    cohort_name = (meta.get("labels") or {}).get(names.LABEL_COHORT)
    if cohort_name:
        cohort = await kube.get(names.API_VERSION, names.COHORT_KIND, cohort_name, meta["namespace"])
        if cohort is not None:
            limit = api.parse_duration(
                api.CohortSpec.model_validate(cohort["spec"]).limits.max_ttl,
                "limits.maxTtl",
                maximum=timedelta(days=3650),
            )
    total = api.parse_duration(spec.get("ttl", api.DEFAULT_TTL), "ttl", maximum=timedelta(days=3650))
    total += api.parse_duration(by, "by")
    if total > limit:
        raise InvalidInput(
            f"by: the session would last {api.format_duration(total)}, beyond the maximum of "
            f"{api.format_duration(limit)}"
        )
    result: Obj = await kube.merge_patch(
        names.API_VERSION,
        names.SESSION_KIND,
        meta["name"],
        {"spec": {"ttl": api.format_duration(total)}},
        meta["namespace"],
    )
    return result


async def reset(kube: Kube, catalog: Catalog, session: Obj, component: str) -> Obj:
    """Ask the operator to recreate one component with fresh data (its volumes are deleted)."""
    components = (session.get("status") or {}).get("components") or []
    if component not in components:
        raise InvalidInput(f"component: {component!r} is not part of this session ({', '.join(components)})")
    meta = session["metadata"]
    patch = {"metadata": {"annotations": {names.ANNOTATION_RESET: component}}}
    result: Obj = await kube.merge_patch(
        names.API_VERSION, names.SESSION_KIND, meta["name"], patch, meta["namespace"]
    )
    return result


async def wait_for_reset(kube: Kube, session: Obj, timeout: float) -> None:
    """Until the operator has removed the component and dropped the reset request."""
    meta = session["metadata"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = await get(kube, meta["namespace"], meta["name"])
        if names.ANNOTATION_RESET not in (current["metadata"].get("annotations") or {}):
            return
        await asyncio.sleep(0.5)
    raise LabenvError(f"session {meta['name']!r}: the reset did not finish within {timeout:.0f}s")


async def get(kube: Kube, namespace: str, name: str) -> Obj:
    await require_crd(kube)
    found = await kube.get(names.API_VERSION, names.SESSION_KIND, name, namespace)
    if found is None:
        raise NotFound(f"session: {name!r} not found in namespace {namespace!r} (see `labenv list`)")
    return found


async def find(kube: Kube, catalog: Catalog, namespace: str, ref: str, learner: str) -> Obj:
    """A session by name, or by unit for the given learner (`labenv stop week21`)."""
    await require_crd(kube)
    found = await kube.get(names.API_VERSION, names.SESSION_KIND, ref, namespace)
    if found is not None:
        return found
    try:
        course, _ = catalog.find_units(ref)
    except LabenvError:
        return await get(kube, namespace, ref)
    name = names.session_name(learner, course.slug, ref.rpartition("/")[2], catalog.default_course)
    return await get(kube, namespace, name)


async def list_sessions(kube: Kube, namespace: str | None, learner: str | None = None) -> list[Obj]:
    await require_crd(kube)
    selector = f"{names.LABEL_LEARNER}={learner}" if learner else None
    items = await kube.list(names.API_VERSION, names.SESSION_KIND, namespace or None, label_selector=selector)
    return sorted(items, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"]))


async def wait_until_settled(kube: Kube, session: Obj, timeout: float) -> AsyncIterator[Obj]:
    """Yield the session each time it changes, until Ready or Failed for its current spec; raise on
    timeout. A session just claimed or moved to another unit still shows its old Ready until the
    operator has looked at the new spec (observedGeneration)."""
    meta = session["metadata"]
    deadline = time.monotonic() + timeout
    yield session
    if settled(session):
        return
    version = meta.get("resourceVersion")
    while (left := deadline - time.monotonic()) > 0:
        async for event in kube.watch(
            names.API_VERSION,
            names.SESSION_KIND,
            meta["namespace"],
            field_selector=f"metadata.name={meta['name']}",
            resource_version=version,
            timeout_seconds=max(1, int(min(left, 60))),
        ):
            obj = event["object"]
            if event["type"] == "ERROR":  # e.g. 410 Gone: re-read and start a fresh watch
                version = None
                break
            version = obj["metadata"].get("resourceVersion", version)
            if event["type"] == "BOOKMARK":
                continue
            if event["type"] == "DELETED":
                raise NotFound(f"session: {meta['name']!r} was deleted while waiting")
            yield obj
            if settled(obj):
                return
        if version is None:
            latest = await get(kube, meta["namespace"], meta["name"])
            version = latest["metadata"]["resourceVersion"]
            yield latest
            if settled(latest):
                return
    raise LabenvError(f"session {meta['name']!r} is not Ready after {timeout:.0f}s: {message_of(session)}")


async def stop(kube: Kube, session: Obj, wait: bool, timeout: float = 300) -> None:
    meta = session["metadata"]
    await kube.delete(names.API_VERSION, names.SESSION_KIND, meta["name"], meta["namespace"])
    if not wait:
        return
    lab = names.lab_namespace(meta["name"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await kube.get("v1", "Namespace", lab) is None:
            return
        await asyncio.sleep(0.5)
    raise LabenvError(f"namespace {lab} still exists after {timeout:.0f}s (is the operator running?)")


async def credentials(kube: Kube, session: Obj) -> dict[str, str]:
    status = session.get("status") or {}
    namespace = status.get("namespace") or names.lab_namespace(session["metadata"]["name"])
    secret = await kube.get(
        "v1", "Secret", status.get("credentialsSecret", names.CONNECTION_SECRET), namespace
    )
    if secret is None:
        raise NotFound(
            f"session {session['metadata']['name']!r} has no credentials yet (phase {phase_of(session)})"
        )
    return {k: base64.b64decode(v).decode() for k, v in sorted((secret.get("data") or {}).items())}


def settled(session: Mapping[str, Any]) -> bool:
    """Ready or Failed, and the status speaks of the current spec."""
    observed = (session.get("status") or {}).get("observedGeneration", 0)
    return phase_of(session) in ("Ready", "Failed") and observed >= session["metadata"].get("generation", 0)


def phase_of(session: Mapping[str, Any]) -> str:
    return str((session.get("status") or {}).get("phase") or "Pending")


def message_of(session: Mapping[str, Any]) -> str:
    return str((session.get("status") or {}).get("message") or "waiting for the operator")
