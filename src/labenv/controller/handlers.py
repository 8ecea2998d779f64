"""Kopf handlers: translate events into calls of the reconciler; no business logic here.

- LabSession created, changed (spec) or found at start-up -> converge it.
- A Deployment, StatefulSet or Job of a lab changed -> refresh that session's status.
- LabSession gone -> delete its namespace. This is an event handler, not a deletion handler, so
  Kopf adds no finalizer (Kopf calls even `optional=True` deletion handlers only while a finalizer
  holds the object): deleting a session never hangs while the operator is down, and the sweeper
  removes the namespace left behind once the operator is back.
- Only a session with a cloud stack carries a finalizer (labenv's own, `labenv.io/cloud-stack`):
  the same event handler, seeing it deleted with that finalizer, starts the task that destroys the
  stack, then deletes the namespace, then removes the finalizer (`labenv.controller.cloud`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from labenv import names
from labenv.catalog.loader import default_catalog
from labenv.controller import metrics
from labenv.controller.cloud import SessionClouds
from labenv.controller.cohorts import CohortReconciler
from labenv.controller.config import OperatorConfig
from labenv.controller.peering import is_active
from labenv.controller.reconciler import Reconciler, RetryLater
from labenv.controller.sweeper import sweep_forever
from labenv.errors import ClusterUnavailable
from labenv.kube.client import ApiError, Kube
from labenv.reconcile.status import WorkloadState, workload_state

LAB_OBJECTS: Mapping[str, Any] = {
    names.LABEL_MANAGED_BY: names.MANAGED_BY,
    names.LABEL_SESSION: kopf.PRESENT,
}
KOPF_PREFIX = f"kopf.{names.GROUP}"
WORKLOADS = (("apps", "v1", "deployments"), ("apps", "v1", "statefulsets"), ("batch", "v1", "jobs"))


@kopf.on.startup()
async def start(
    *,
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    config = OperatorConfig.from_env()
    # Kopf's bookkeeping goes to annotations, so status holds only what the CRD declares. Its own
    # prefix: Kopf leaves annotations under its storage prefix out of the diffs handlers react to,
    # and labenv's (labenv.io/reset) must be seen.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    # Whole seconds: the API server parses timeoutSeconds as an integer.
    settings.watching.server_timeout = int(config.watch_server_timeout)
    settings.watching.client_timeout = int(config.watch_client_timeout)
    settings.watching.connect_timeout = config.connect_timeout
    settings.networking.connect_timeout = config.connect_timeout
    settings.execution.max_workers = 32
    # A replica that dies without saying goodbye stops blocking the others after this long.
    settings.peering.lifetime = 30
    settings.posting.level = logging.WARNING
    memo.config = config
    memo.kube = await Kube.connect()
    # One stack runner for the process, from $LABENV_CLOUD_CONFIG (none: no cloud stacks).
    memo.reconciler = Reconciler(memo.kube, default_catalog(), config, SessionClouds.from_env(memo.kube))
    memo.cohorts = CohortReconciler(memo.kube, default_catalog())
    metrics.serve(config.metrics_port, memo.reconciler.session_phases, lambda: memo.kube.requests)
    memo.sweeper = asyncio.create_task(
        sweep_forever(memo.kube, config.sweep_interval, _activity_check(memo.kube, settings))
    )
    logger.info(
        "labenv operator started: %d courses, %d components",
        len(memo.reconciler.catalog.courses),
        len(memo.reconciler.catalog.components),
    )


def _activity_check(kube: Kube, settings: kopf.OperatorSettings) -> Callable[[], Awaitable[bool]]:
    """Standalone: always active. Peered: only while Kopf lets this replica run its handlers."""
    peering = settings.peering

    async def active() -> bool:
        if peering.standalone:
            return True
        return await is_active(kube, peering.name, peering.priority)

    return active


@kopf.on.cleanup()
async def stop(*, memo: kopf.Memo, **_: Any) -> None:
    memo.sweeper.cancel()
    await memo.reconciler.clouds.close()
    await memo.kube.close()


# --- caches: what the operator knows of lab workloads and sessions, without extra API calls ---


def _in_its_lab(namespace: str | None, labels: Mapping[str, str]) -> bool:
    """Labels are the learner's to write: a workload speaks for a session only from that session's
    own namespace, or one learner could fail another's lab with a labelled Job."""
    return namespace == names.lab_namespace(labels[names.LABEL_SESSION])


def _workload_entry(
    *, body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
) -> dict[tuple[str, str], WorkloadState]:
    if not _in_its_lab(namespace, labels):
        return {}
    key = (labels.get(names.LABEL_SESSION_NAMESPACE, ""), labels[names.LABEL_SESSION])
    return {key: workload_state(body)}


for _group, _version, _plural in WORKLOADS:
    kopf.index(_group, _version, _plural, labels=LAB_OBJECTS, id=f"{_plural}_by_session")(_workload_entry)


@kopf.index(names.GROUP, names.VERSION, names.SESSION_PLURAL)
def sessions_by_key(
    *, body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(namespace or "", name): without_bookkeeping(body)}


def without_bookkeeping(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the reconciler reads of a session, without managedFields and Kopf's annotations (a
    copy of the spec): at hundreds of sessions they are most of the index's memory."""
    meta = body["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(KOPF_PREFIX)}
    trimmed = {k: v for k, v in meta.items() if k != "managedFields"}
    return {**body, "metadata": {**trimmed, "annotations": annotations}}


def _workloads(key: tuple[str, str], kwargs: Mapping[str, Any]) -> list[WorkloadState]:
    found: list[WorkloadState] = []
    for _, _, plural in WORKLOADS:
        found.extend(kwargs[f"{plural}_by_session"].get(key, []))
    return found


def _retry(exc: Exception, config: OperatorConfig) -> kopf.TemporaryError:
    metrics.API_RETRIES.labels(type(exc).__name__).inc()
    if isinstance(exc, RetryLater):
        return kopf.TemporaryError(str(exc), delay=exc.delay)
    return kopf.TemporaryError(str(exc), delay=config.retry_delay)


# --- handlers -----------------------------------------------------------------------------


@kopf.on.resume(names.GROUP, names.VERSION, names.SESSION_PLURAL)
@kopf.on.create(names.GROUP, names.VERSION, names.SESSION_PLURAL)
@kopf.on.update(names.GROUP, names.VERSION, names.SESSION_PLURAL, field="spec")
@kopf.on.update(
    names.GROUP,
    names.VERSION,
    names.SESSION_PLURAL,
    field=("metadata", "annotations", names.ANNOTATION_RESET),
)
async def converge_session(
    *, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    try:
        await memo.reconciler.converge(body, lambda: _workloads((namespace or "", name), kwargs))
    except (RetryLater, ClusterUnavailable) as exc:
        raise _retry(exc, memo.config) from exc
    except ApiError as exc:
        if exc.retriable:
            raise _retry(exc, memo.config) from exc
        raise kopf.TemporaryError(str(exc), delay=60) from exc


async def _workload_changed(
    *, type: str, namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **kwargs: Any
) -> None:
    """Refresh the session's status; a workload deleted from under a live session is restored."""
    if not _in_its_lab(namespace, labels):
        return
    key = (labels.get(names.LABEL_SESSION_NAMESPACE, ""), labels[names.LABEL_SESSION])
    bodies = kwargs["sessions_by_key"].get(key)
    if not bodies:
        return
    body = next(iter(bodies))
    if type == "DELETED":
        await memo.reconciler.restore(body, lambda: _workloads(key, kwargs))
    else:
        await memo.reconciler.report(body, lambda: _workloads(key, kwargs))


for _group, _version, _plural in WORKLOADS:
    kopf.on.event(_group, _version, _plural, labels=LAB_OBJECTS, id=f"{_plural}_changed")(_workload_changed)


@kopf.on.event(names.GROUP, names.VERSION, names.SESSION_PLURAL)
async def session_gone(
    *, type: str, body: kopf.Body, namespace: str | None, name: str, uid: str, memo: kopf.Memo, **_: Any
) -> None:
    if type == "DELETED":
        await memo.reconciler.teardown(namespace or "", name, uid)
    else:  # being deleted while holding the cloud finalizer: destroy the stack first
        memo.reconciler.clouds.watch_deletion(body, memo.reconciler.lock)
