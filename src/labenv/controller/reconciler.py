"""Observe, compute desired state, apply, report: one LabSession at a time, safe to kill anywhere.

Every step is idempotent. Only the generated-credentials Secret is created rather than applied,
and only its missing keys are ever added, so a restart or a second replica never rotates them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from labenv import api, names
from labenv.catalog.loader import Catalog
from labenv.catalog.model import ResolvedUnit
from labenv.components import credentials
from labenv.components.model import Component
from labenv.components.render import SessionContext, render_component
from labenv.controller import events, metrics
from labenv.controller.cloud import SessionClouds
from labenv.controller.config import OperatorConfig
from labenv.errors import LabenvError
from labenv.kube.client import ApiError, Kube
from labenv.reconcile import cloud, session, status, tenancy

Obj = dict[str, Any]
# The session's workloads as the operator's index holds them, read when a pass starts: a list taken
# when the event arrived may be stale by the time the session's lock is free.
Workloads = Callable[[], Iterable[status.WorkloadState]]
log = logging.getLogger(__name__)
# A change of progress messages alone ("0/1 ready" -> "StatefulSet kafka: 1/1 ready" of a component
# still waiting for its Job) is written at most this often per session, with the latest seen;
# a change of any condition's status or reason is written at once.
STATUS_MESSAGE_DELAY = 1.0
# What `labenv reset` removes of a component: its workloads, then the claims that hold its data.
RESET_KINDS = (
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("v1", "PersistentVolumeClaim"),
)


class RetryLater(LabenvError):
    """Not an error of the session: try again after `delay` seconds (the handler maps it to Kopf)."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True)
class SessionRef:
    """What the reconciler reads of a LabSession body."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: str
    deleting: bool
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    annotations: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    finalizers: tuple[str, ...] = ()

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SessionRef:
        meta = body["metadata"]
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation") or 0),
            created=meta.get("creationTimestamp") or api.timestamp(api.now()),
            deleting=bool(meta.get("deletionTimestamp")),
            spec=dict(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
            annotations=dict(meta.get("annotations") or {}),
            labels=dict(meta.get("labels") or {}),
            finalizers=tuple(meta.get("finalizers") or ()),
        )

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def lab_namespace(self) -> str:
        return names.lab_namespace(self.name)


def _decode(data: Mapping[str, str] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


def _encode(values: Mapping[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


def expires_at(ref: SessionRef, spec: api.SessionSpec) -> str:
    ttl = api.parse_duration(spec.ttl, "spec.ttl", maximum=timedelta(days=3650))
    return api.timestamp(api.parse_timestamp(ref.created) + ttl)


def report_transitions(
    ref: SessionRef, spec: api.SessionSpec, before: Mapping[str, Any], after: Mapping[str, Any]
) -> None:
    """Events a newcomer reads in `kubectl describe`, and the durations Prometheus keeps."""
    obj = {
        "apiVersion": names.API_VERSION,
        "kind": names.SESSION_KIND,
        "metadata": {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid},
    }
    started = api.parse_timestamp(str(after["startedAt"]))
    old = {c["type"]: c for c in before.get("conditions", [])}
    if not before.get("phase"):
        events.post(
            obj,
            "Normal",
            "Provisioning",
            message=f"provisioning {spec.course}/{spec.unit}: {', '.join(after.get('components', []))}",
        )
    for c in after.get("conditions", []):
        was = old.get(c["type"], {})
        if c["status"] == was.get("status") and c["reason"] == was.get("reason"):
            continue
        seconds = (api.parse_timestamp(c["lastTransitionTime"]) - started).total_seconds()
        if c["type"] == "Ready" and c["status"] == "True":
            events.post(obj, "Normal", "Ready", message=f"{c['message']} after {seconds:.0f}s")
            if not before.get("readyAt"):
                metrics.PROVISIONING.labels(spec.course, spec.unit).observe(seconds)
        elif c["status"] == "True":
            component = next(
                (n for n in after.get("components", []) if names.condition_type(n) == c["type"]),
                c["type"].removesuffix("Ready"),  # CloudStack
            )
            events.post(obj, "Normal", "ComponentReady", message=f"{component} is ready")
            metrics.COMPONENT_READY.labels(component).observe(seconds)
        elif c["reason"] in ("Failed", "InvalidEnvironment", "ClusterPrerequisiteMissing"):
            events.post(obj, "Warning", c["reason"], message=c["message"])
            metrics.RECONCILE_ERRORS.labels(c["reason"]).inc()


def components_to_apply(
    desired: session.DesiredState,
    resolved: ResolvedUnit,
    applied: Set[str],
    workloads: Sequence[status.WorkloadState],
    missing: Mapping[str, tuple[str, ...]],
    generation: int,
    stack: cloud.CloudState | None,
) -> list[session.ComponentPlan]:
    """The components whose dependencies are ready, to a fixpoint: one applied in this very pass may
    be ready already (its objects left by a pass that died before writing status), and then its
    dependants go now, since no later workload event may come to unblock them."""
    chosen: list[session.ComponentPlan] = []
    while True:
        considered = sorted(set(applied) | {p.name for p in chosen})
        conditions = cloud.observe(resolved.components, considered, workloads, missing, generation, stack)
        ready = status.ready_components(conditions, resolved.components)
        eligible = [p for p in desired.eligible(ready) if not missing.get(p.name)]
        if len(eligible) == len(chosen):
            return eligible
        chosen = eligible


class Reconciler:
    def __init__(
        self, kube: Kube, catalog: Catalog, config: OperatorConfig, clouds: SessionClouds | None = None
    ) -> None:
        self.kube = kube
        self.catalog = catalog
        self.config = config
        self.clouds = clouds or SessionClouds(kube)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # The status this process wrote last, per session: the body a watch event brings may be
        # older than our own last write, and acting on it would redo finished work.
        self._written: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._phases: dict[tuple[str, str], Mapping[str, str]] = {}
        self._deferred: dict[tuple[str, str], tuple[Mapping[str, Any], Workloads]] = {}
        self._flushes: dict[tuple[str, str], asyncio.Task[None]] = {}

    def lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def forget(self, key: tuple[str, str]) -> None:
        self._locks.pop(key, None)
        self._written.pop(key, None)
        self._phases.pop(key, None)
        self._deferred.pop(key, None)
        flush = self._flushes.pop(key, None)
        if flush:
            flush.cancel()

    def session_phases(self) -> list[Mapping[str, str]]:
        """Phase, course and unit of every session this process reconciles (for metrics)."""
        return list(self._phases.values())

    def _latest(self, ref: SessionRef) -> SessionRef:
        written = self._written.get(ref.key)
        return ref if written is None else replace(ref, status=written)

    # --- the whole loop ------------------------------------------------------------------------

    async def converge(self, body: Mapping[str, Any], workloads: Workloads) -> None:
        ref = SessionRef.from_body(body)
        async with self.lock(ref.key):
            stack = await self._converge(self._latest(ref), list(workloads()))
        if stack is not None and stack.retry_after is not None:
            raise RetryLater(stack.condition.message, delay=stack.retry_after)

    async def _converge(
        self, ref: SessionRef, workloads: list[status.WorkloadState], only_unblocked: bool = False
    ) -> cloud.CloudState | None:
        """The whole pass; `only_unblocked` when nothing but a dependency's readiness changed since
        the last full pass of this spec: then only the components it unblocks are applied."""
        try:
            spec = api.SessionSpec.model_validate(ref.spec)
            resolved = session.resolve(self.catalog, spec)
            plan = cloud.plan(resolved, spec)
        except (LabenvError, ValidationError) as exc:
            await self._report_invalid(ref, exc)
            return None
        local = cloud.in_namespace(resolved, plan)  # without what the cloud stack provides
        ctx = session.context(ref.name, ref.namespace, spec, self.config.workspace_image)
        if not only_unblocked:
            await self._ensure_namespace(ref, ctx, local.components)
        generated = await self._ensure_generated(ctx, resolved.components)
        if names.ANNOTATION_RESET in ref.annotations:
            await self._reset(ref, ctx, ref.annotations[names.ANNOTATION_RESET])
        try:
            desired = session.desired(self.catalog, local, ctx, ref.uid, generated)
        except LabenvError as exc:
            await self._report_invalid(ref, exc)
            return None
        if not only_unblocked:
            await self._apply_all(
                [*desired.tenancy, desired.connection_secret, *cloud.managed_egress(ctx, plan)]
            )
        stack = None
        if plan is not None:
            stack = await self.clouds.ensure(ref, spec, plan, ctx, generated, expires_at(ref, spec))

        missing = await self._missing_apis(local.components)
        applied_before = set(ref.status.get("appliedComponents", []))
        now_applying = components_to_apply(
            desired, resolved, applied_before, workloads, missing, ref.generation, stack
        )
        await self._apply_all(
            [
                obj
                for plan in now_applying
                if not (only_unblocked and plan.name in applied_before)
                for obj in plan.objects
            ]
        )

        wanted = {c.name for c in resolved.components}
        await self._prune(ctx, applied_before - wanted, resolved)
        applied = sorted((applied_before & wanted) | {p.name for p in now_applying})
        await self._write_status(ref, spec, resolved, desired, applied, workloads, missing, stack)
        return stack

    async def restore(self, body: Mapping[str, Any], workloads: Workloads) -> None:
        """A workload is gone: converge, unless the session or its namespace is going too."""
        ref = SessionRef.from_body(body)
        if ref.deleting:
            return
        namespace = await self.kube.get("v1", "Namespace", ref.lab_namespace)
        if namespace is None or namespace["metadata"].get("deletionTimestamp"):
            return
        try:
            await self.converge(body, workloads)
        except RetryLater as exc:  # an event handler is not retried: the next event or restart is
            log.info("session %s/%s: restoring later: %s", ref.namespace, ref.name, exc)

    async def report(self, body: Mapping[str, Any], workloads: Workloads, *, deferred: bool = False) -> None:
        """A workload changed: refresh status, and apply the components its readiness unblocks.
        (A deleted workload is restored by `converge`; a spec not yet looked at is converge's too.)"""
        ref = SessionRef.from_body(body)
        if ref.deleting:
            return
        async with self.lock(ref.key):
            ref = self._latest(ref)
            if ref.status.get("observedGeneration") != ref.generation:
                return  # converge has not looked at this spec yet; it writes the status first
            observed = list(workloads())
            try:
                spec = api.SessionSpec.model_validate(ref.spec)
                resolved = session.resolve(self.catalog, spec)
                plan = cloud.plan(resolved, spec)
            except (LabenvError, ValidationError):
                return  # the session handler reports invalid specs
            stack = None if plan is None else cloud.carried(plan, ref.status, ref.generation)
            local = cloud.in_namespace(resolved, plan)
            applied = ref.status.get("appliedComponents", [])
            missing = await self._missing_apis(local.components)
            conditions = cloud.observe(resolved.components, applied, observed, missing, ref.generation, stack)
            ready = status.ready_components(conditions, resolved.components)
            unblocked = [
                c.name
                for c in local.components
                if c.name not in applied and not missing.get(c.name) and all(d in ready for d in c.depends_on)
            ]
            if unblocked:
                await self._converge(ref, observed, only_unblocked=True)
                return
            conditions = [*conditions, *cloud.conditions(stack)]
            if not deferred and not status.changes_state(ref.status, conditions):
                self._defer(ref.key, body, workloads)
                return
            self._deferred.pop(ref.key, None)
            await self._write_conditions(ref, spec, conditions, failure=stack.failure if stack else None)

    def _defer(self, key: tuple[str, str], body: Mapping[str, Any], workloads: Workloads) -> None:
        self._deferred[key] = (body, workloads)
        flush = self._flushes.get(key)
        if flush is None or flush.done():
            self._flushes[key] = asyncio.create_task(self._flush(key))

    async def _flush(self, key: tuple[str, str]) -> None:
        await asyncio.sleep(STATUS_MESSAGE_DELAY)
        latest = self._deferred.pop(key, None)
        if latest is None:
            return  # a state change was written meanwhile, messages included
        try:
            await self.report(*latest, deferred=True)
        except LabenvError as exc:  # the next workload event refreshes it
            log.warning("session %s/%s: status refresh failed: %s", key[0], key[1], exc)

    # --- steps ---------------------------------------------------------------------------------

    async def _ensure_namespace(
        self, ref: SessionRef, ctx: SessionContext, components: Sequence[Component]
    ) -> None:
        existing = await self.kube.get("v1", "Namespace", ctx.namespace)
        if existing is not None:
            owner = (existing["metadata"].get("labels") or {}).get(names.LABEL_SESSION_UID)
            if existing["metadata"].get("deletionTimestamp"):
                raise RetryLater(f"namespace {ctx.namespace} is still being deleted", delay=5)
            if owner != ref.uid:
                raise RetryLater(f"namespace {ctx.namespace} belongs to another session or to nobody", 30)
        await self.kube.apply(tenancy.namespace(ctx, ref.uid, components))

    async def _ensure_generated(self, ctx: SessionContext, components: Sequence[Component]) -> dict[str, str]:
        """Create the generated Secret once; later only add keys it lacks (optimistic concurrency)."""
        secret = await self.kube.get("v1", "Secret", names.GENERATED_SECRET, ctx.namespace)
        if secret is None:
            values = credentials.missing(components, {})
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": names.GENERATED_SECRET,
                    "namespace": ctx.namespace,
                    "labels": {**ctx.labels(), names.LABEL_COMPONENT: "credentials"},
                },
                "data": _encode(values),
            }
            try:
                secret = await self.kube.create(body)
            except ApiError as exc:
                if not exc.conflict:
                    raise
                secret = await self.kube.get("v1", "Secret", names.GENERATED_SECRET, ctx.namespace)
                if secret is None:
                    raise RetryLater("generated Secret vanished while being created", delay=1) from exc
        existing = _decode(secret.get("data"))
        fresh = credentials.missing(components, existing)
        if fresh:
            patch = {
                "metadata": {"resourceVersion": secret["metadata"]["resourceVersion"]},
                "data": _encode(fresh),
            }
            try:
                await self.kube.merge_patch("v1", "Secret", names.GENERATED_SECRET, patch, ctx.namespace)
            except ApiError as exc:
                if exc.conflict:  # another writer added keys first: read theirs next time
                    raise RetryLater("generated Secret changed concurrently", delay=1) from exc
                raise
        return {**existing, **fresh}

    async def _apply_all(self, objects: Sequence[Obj]) -> None:
        """Concurrently, but Roles first: a RoleBinding to a Role that does not exist yet fails the
        API server's escalation check for an operator that holds only what it grants."""
        roles = [o for o in objects if o["kind"] == "Role"]
        await asyncio.gather(*(self._apply(obj) for obj in roles))
        await asyncio.gather(*(self._apply(obj) for obj in objects if obj["kind"] != "Role"))

    async def _apply(self, obj: Obj) -> None:
        """Apply; a Job whose options changed is replaced, since a Job's pod template is immutable
        and an init Job is idempotent by design (it re-creates nothing that exists)."""
        try:
            await self.kube.apply(obj)
        except ApiError as exc:
            if not (obj["kind"] == "Job" and exc.status == 422 and "immutable" in str(exc)):
                raise
            meta = obj["metadata"]
            await self.kube.delete(obj["apiVersion"], "Job", meta["name"], meta["namespace"])
            await self.kube.apply(obj)

    async def _missing_apis(self, components: Sequence[Component]) -> dict[str, tuple[str, ...]]:
        missing: dict[str, tuple[str, ...]] = {}
        for c in components:
            if c.requires_apis:
                for api_version in c.requires_apis:
                    self.kube.forget(api_version)  # an admin may have installed it since
                gaps = tuple([a for a in c.requires_apis if not await self.kube.served(a)])
                if gaps:
                    missing[c.name] = gaps
        return missing

    async def _prune(self, ctx: SessionContext, removed: set[str], resolved: ResolvedUnit) -> None:
        """Delete the objects of components the unit no longer has; their volumes stay."""
        for name in sorted(removed):
            component = self.catalog.components.get(name)
            if component is None:
                continue
            defaults = {k: v.default for k, v in component.options.items()}
            objects = render_component(self.catalog.root / "components", component, defaults, ctx)
            for obj in objects:
                await self.kube.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], ctx.namespace)
            log.info("pruned component %s of session %s", name, ctx.session)

    async def _reset(self, ref: SessionRef, ctx: SessionContext, component: str) -> None:
        """Delete a component's workloads and volumes; once all are gone, drop the request so the
        next pass applies the component afresh. Credentials stay: they match the unit's settings."""
        selector = f"{names.LABEL_SESSION}={ref.name},{names.LABEL_COMPONENT}={component}"
        remaining = []
        for api_version, kind in RESET_KINDS:
            for obj in await self.kube.list(api_version, kind, ctx.namespace, label_selector=selector):
                if not obj["metadata"].get("deletionTimestamp"):
                    await self.kube.delete(api_version, kind, obj["metadata"]["name"], ctx.namespace)
                remaining.append(f"{kind} {obj['metadata']['name']}")
        if remaining:
            message = f"resetting {component}: waiting for {', '.join(remaining)} to go"
            # A merge patch, not an apply: it must not drop the status fields the apply owns.
            interim = {"phase": api.Phase.PROVISIONING.value, "message": message}
            await self.kube.merge_patch(
                names.API_VERSION,
                names.SESSION_KIND,
                ref.name,
                {"status": interim},
                ref.namespace,
                subresource="status",
            )
            self._written[ref.key] = {**ref.status, **interim}
            raise RetryLater(message, delay=1)
        patch = {"metadata": {"annotations": {names.ANNOTATION_RESET: None}}}
        await self.kube.merge_patch(names.API_VERSION, names.SESSION_KIND, ref.name, patch, ref.namespace)
        log.info("session %s/%s: %s was reset", ref.namespace, ref.name, component)

    # --- status --------------------------------------------------------------------------------

    async def _write_status(
        self,
        ref: SessionRef,
        spec: api.SessionSpec,
        resolved: ResolvedUnit,
        desired: session.DesiredState,
        applied: list[str],
        workloads: list[status.WorkloadState],
        missing: Mapping[str, tuple[str, ...]],
        stack: cloud.CloudState | None = None,
    ) -> None:
        conditions = cloud.observe(resolved.components, applied, workloads, missing, ref.generation, stack)
        extra: Obj = {
            "namespace": ref.lab_namespace,
            "credentialsSecret": names.CONNECTION_SECRET,
            "components": [c.name for c in resolved.components],
            "appliedComponents": applied,
            "endpoints": [e.model_dump() for p in desired.components for e in p.endpoints],
        }
        failure = stack.failure if stack else None
        await self._write_conditions(ref, spec, [*conditions, *cloud.conditions(stack)], extra, failure)

    async def _write_conditions(
        self,
        ref: SessionRef,
        spec: api.SessionSpec,
        conditions: list[api.Condition],
        extra: Obj | None = None,
        failure: str | None = None,
    ) -> None:
        ready = status.ready_condition(conditions, ref.generation, failure)
        phase = status.phase(ready, conditions, ref.deleting)
        now = api.timestamp(api.now())
        new: Obj = {
            **(extra or {}),
            "phase": phase.value,
            "message": ready.message,
            "observedGeneration": ref.generation,
            "startedAt": ref.status.get("startedAt") or ref.created,
            "expiresAt": expires_at(ref, spec),
            "conditions": status.with_transition_times(
                [*conditions, ready], ref.status.get("conditions", []), now
            ),
        }
        if phase == api.Phase.READY:
            new["readyAt"] = ref.status.get("readyAt") or now
        elif ref.status.get("readyAt"):
            new["readyAt"] = ref.status["readyAt"]
        merged = {**{k: v for k, v in ref.status.items() if k not in new}, **new}
        self._phases[ref.key] = {"phase": phase.value, "course": spec.course, "unit": spec.unit}
        if merged == dict(ref.status):
            self._written[ref.key] = merged
            return  # nothing changed: spare the API server a write
        await self.kube.apply_status(names.API_VERSION, names.SESSION_KIND, ref.namespace, ref.name, merged)
        self._written[ref.key] = merged
        report_transitions(ref, spec, ref.status, merged)

    async def _report_invalid(self, ref: SessionRef, exc: Exception) -> None:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            message = f"spec.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        log.warning("session %s/%s has an invalid environment: %s", ref.namespace, ref.name, message)
        try:
            spec = api.SessionSpec.model_validate(ref.spec)
        except ValidationError:
            spec = api.SessionSpec(learner="invalid", course="invalid", unit="invalid")
        await self._write_conditions(ref, spec, [], {"namespace": ref.lab_namespace}, failure=message)

    # --- deletion ------------------------------------------------------------------------------

    async def teardown(self, namespace: str, name: str, uid: str) -> None:
        """The session is gone: remove its namespace (and with it everything inside)."""
        self.forget((namespace, name))
        self.clouds.forget(uid)
        lab = names.lab_namespace(name)
        existing = await self.kube.get("v1", "Namespace", lab)
        if existing and (existing["metadata"].get("labels") or {}).get(names.LABEL_SESSION_UID) == uid:
            await self.kube.delete("v1", "Namespace", lab)
