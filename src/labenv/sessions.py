"""What the CLI does with LabSessions: create or find, wait, read credentials, stop.

Validation happens here before anything is written, so bad input leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from labenv import api, names
from labenv.catalog.loader import Catalog
from labenv.errors import ClusterUnavailable, InvalidInput, LabenvError, NotFound
from labenv.kube.client import ApiError, Kube

Obj = dict[str, Any]


@dataclass(frozen=True)
class StartRequest:
    unit: str
    learner: str
    course: str | None
    ttl: str


@dataclass(frozen=True)
class Started:
    session: Obj
    created: bool


def plan_session(catalog: Catalog, request: StartRequest) -> tuple[str, api.SessionSpec]:
    """Check everything that can be checked offline; return the session name and spec."""
    course, _ = catalog.find_units(request.unit, request.course)
    unit_id = request.unit.rpartition("/")[2]
    catalog.resolve(unit_id, course.slug)  # refuses unsupported units
    learner = names.check_learner(request.learner)
    ttl = api.format_duration(api.parse_duration(request.ttl))
    spec = api.SessionSpec(learner=learner, course=course.slug, unit=unit_id, ttl=ttl)
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
    """Create the session, or return the learner's existing one for the same unit."""
    await require_crd(kube)
    existing = await kube.get(names.API_VERSION, names.SESSION_KIND, name, namespace)
    if existing is not None:
        return Started(existing, created=False)
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
    """Yield the session each time it changes, until Ready or Failed; raise on timeout."""
    meta = session["metadata"]
    deadline = time.monotonic() + timeout
    yield session
    if phase_of(session) in ("Ready", "Failed"):
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
            if phase_of(obj) in ("Ready", "Failed"):
                return
        if version is None:
            latest = await get(kube, meta["namespace"], meta["name"])
            version = latest["metadata"]["resourceVersion"]
            yield latest
            if phase_of(latest) in ("Ready", "Failed"):
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


def phase_of(session: Mapping[str, Any]) -> str:
    return str((session.get("status") or {}).get("phase") or "Pending")


def message_of(session: Mapping[str, Any]) -> str:
    return str((session.get("status") or {}).get("message") or "waiting for the operator")
