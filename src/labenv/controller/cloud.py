"""The operator's cloud glue: a session's Pulumi stack comes up with it and goes before its namespace.

The contract is `labenv.cloud.lifecycle`'s docstring; the pure decisions are there and in
`labenv.reconcile.cloud`; this module makes the API calls.

- **One runner per operator process**, from the settings file `$LABENV_CLOUD_CONFIG` (docs/cloud.md).
  Without settings, or with settings that do not load, every session without cloud needs runs as
  before; a session that needs a cloud is Failed with the reason (CloudStackReady=False,
  CloudNotConfigured) and gets no finalizer, since no stack was made.
- **Up** (`ensure`, from the reconcile loop): the finalizer `labenv.io/cloud-stack` is added first
  (a merge patch guarded by the resourceVersion), so a crash during `up` still ends in a destroy;
  `up` runs only when the stack's fingerprint differs from the session's annotation or the outputs
  are not in the connection Secret; the outputs go into that Secret under a field manager of their
  own, then the annotation is written. A failure sets CloudStackReady=False and the reconciler
  converges again after `retry_delay` (30 s doubling to 30 min; workload events in between do not
  run `up` early).
- **Destroy** (`watch_deletion`, from the LabSession event handler): when a session has a
  deletionTimestamp and still holds the finalizer, one task per session destroys the stack, then
  deletes the namespace, then removes the finalizer (only labenv's). A failed destroy keeps the
  finalizer, sets CloudStackDestroyFailed=True with the error, and is retried with the same backoff
  until it succeeds: nothing else removes the finalizer (an admin who cleaned up by hand may).

  Why a task and not Kopf's retries: Kopf does not retry event handlers (a TemporaryError there is
  logged and dropped), and a Kopf deletion handler would make Kopf put its own finalizer on every
  LabSession, including the ones without cloud needs. The task re-reads the session before each
  attempt (an admin may have removed the finalizer), and needs no persistence: the finalizer keeps
  the session in the API, so an operator that restarts sees it in its initial listing and starts
  the task again. The sweeper needs no change: a session being finalized still exists, so its
  namespace is not an orphan.

`LABENV_CLOUD_RETRY_BASE` (seconds, default 30) scales the backoff, for tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labenv import api, doctor, names
from labenv.cloud import lifecycle
from labenv.cloud.config import CONFIG_ENV, CloudSettings, load_settings
from labenv.cloud.errors import CloudStackDestroyError
from labenv.cloud.lifecycle import CloudPlan, SessionKey
from labenv.cloud.runner import StackRunner, make_runner
from labenv.components.render import SessionContext
from labenv.controller import events
from labenv.errors import LabenvError
from labenv.kube.client import ApiError, Kube
from labenv.reconcile import cloud as rcloud
from labenv.reconcile.cloud import CloudState

if TYPE_CHECKING:
    from labenv.controller.reconciler import SessionRef

Obj = dict[str, Any]
log = logging.getLogger(__name__)
RETRY_BASE_ENV = "LABENV_CLOUD_RETRY_BASE"
UNEXPECTED_RETRY_SECONDS = 10.0


def _session_obj(namespace: str, name: str, uid: str) -> Obj:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.SESSION_KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
    }


@dataclass
class SessionClouds:
    """The stacks of this operator's sessions (one runner, made once at start-up)."""

    kube: Kube
    runner: StackRunner | None = None
    settings: CloudSettings | None = None
    # Why there is no runner, for the sessions that need one.
    unavailable: str = f"the operator has no cloud settings (set {CONFIG_ENV}, see docs/cloud.md)"
    retry_base: float = lifecycle.RETRY_BASE_SECONDS
    _held: set[str] = field(default_factory=set)  # session UIDs known to carry the finalizer
    _fingerprints: dict[str, str] = field(default_factory=dict)
    _attempts: dict[str, int] = field(default_factory=dict)
    _not_before: dict[str, float] = field(default_factory=dict)
    _finalizing: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    @classmethod
    def from_env(cls, kube: Kube) -> SessionClouds:
        base = float(os.environ.get(RETRY_BASE_ENV, lifecycle.RETRY_BASE_SECONDS))
        if not os.environ.get(CONFIG_ENV):
            return cls(kube, retry_base=base)
        try:
            settings = load_settings()
            runner = make_runner(settings)
        except LabenvError as exc:
            log.error("cloud stacks are disabled: %s", exc)
            return cls(
                kube, unavailable=f"the operator's cloud settings are unusable: {exc}", retry_base=base
            )
        log.info("cloud stacks: %s runner, backend %s", settings.runner, settings.backend_url)
        return cls(kube, runner, settings, retry_base=base)

    def delay(self, attempt: int) -> float:
        return lifecycle.retry_delay(attempt) * self.retry_base / lifecycle.RETRY_BASE_SECONDS

    def forget(self, uid: str) -> None:
        self._held.discard(uid)
        for memo in (self._fingerprints, self._attempts, self._not_before):
            memo.pop(uid, None)

    async def close(self) -> None:
        tasks = list(self._finalizing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- up -------------------------------------------------------------------------------------

    async def ensure(
        self,
        ref: SessionRef,
        spec: api.SessionSpec,
        plan: CloudPlan,
        ctx: SessionContext,
        generated: Mapping[str, str],
        expires_at: str,
    ) -> CloudState:
        """Finalizer, then the stack up to date and its outputs in the connection Secret; its state."""
        if self.runner is None or self.settings is None:
            return rcloud.not_configured(plan, self.unavailable, ref.generation)
        if ref.deleting:
            return rcloud.carried(plan, ref.status, ref.generation)
        loop = asyncio.get_running_loop()
        if loop.time() < self._not_before.get(ref.uid, 0.0):  # backing off: a workload event came
            state = rcloud.carried(plan, ref.status, ref.generation)
            return CloudState(plan, state.condition, retry_after=self._not_before[ref.uid] - loop.time())
        key = SessionKey(namespace=ref.namespace, name=ref.name)
        try:  # settings the stack needs but the admin did not give fail here, with the setting named
            owner = rcloud.owner(spec.learner, ref.labels, expires_at)
            args = lifecycle.stack_args(plan, key, owner, self.settings, dict(generated))
        except LabenvError as exc:
            return self._failed(ref, plan, exc)
        fingerprint = lifecycle.stack_fingerprint(args)
        if not await self._hold(ref):
            return rcloud.carried(plan, ref.status, ref.generation)
        if not await self._current(ref, ctx, fingerprint):
            try:
                outputs = await lifecycle.ensure_stacks(
                    self.runner, plan, key, owner=owner, settings=self.settings, generated=dict(generated)
                )
            except LabenvError as exc:  # CloudStackError, PulumiUnavailable: the cloud side failed
                return self._failed(ref, plan, exc)
            await self.kube.apply(rcloud.outputs_secret(ctx, outputs, fingerprint), rcloud.FIELD_MANAGER)
            patch = {"metadata": {"annotations": {lifecycle.FINGERPRINT_ANNOTATION: fingerprint}}}
            await self.kube.merge_patch(names.API_VERSION, names.SESSION_KIND, ref.name, patch, ref.namespace)
            self._fingerprints[ref.uid] = fingerprint
            log.info("stack %s is up to date (%d outputs)", key.stack, len(outputs))
        self._attempts.pop(ref.uid, None)
        self._not_before.pop(ref.uid, None)
        return CloudState(plan, lifecycle.stack_condition(None, ref.generation))

    def _failed(self, ref: SessionRef, plan: CloudPlan, exc: Exception) -> CloudState:
        attempt = self._attempts.get(ref.uid, 0)
        self._attempts[ref.uid] = attempt + 1
        delay = self.delay(attempt)
        self._not_before[ref.uid] = asyncio.get_running_loop().time() + delay
        log.warning("session %s/%s: %s (retry in %.0fs)", ref.namespace, ref.name, exc, delay)
        events.post(_session_obj(ref.namespace, ref.name, ref.uid), "Warning", "CloudStackFailed", str(exc))
        return CloudState(plan, lifecycle.stack_condition(exc, ref.generation), retry_after=delay)

    async def _hold(self, ref: SessionRef) -> bool:
        """Add the finalizer unless the session has it; False when the session is going away."""
        if lifecycle.FINALIZER in ref.finalizers or ref.uid in self._held:
            self._held.add(ref.uid)
            return True
        current = await self.kube.get(names.API_VERSION, names.SESSION_KIND, ref.name, ref.namespace)
        if (
            current is None
            or current["metadata"]["uid"] != ref.uid
            or current["metadata"].get("deletionTimestamp")
        ):
            return False
        if not rcloud.has_finalizer(current):
            # A conflict (the session changed since it was read) is retried by the handler.
            patch = rcloud.finalizers_patch(current, add=True)
            await self.kube.merge_patch(names.API_VERSION, names.SESSION_KIND, ref.name, patch, ref.namespace)
        self._held.add(ref.uid)
        return True

    async def _current(self, ref: SessionRef, ctx: SessionContext, fingerprint: str) -> bool:
        """The stack was brought up from these inputs, and its outputs are in the connection Secret."""
        known = (ref.annotations.get(lifecycle.FINGERPRINT_ANNOTATION), self._fingerprints.get(ref.uid))
        if fingerprint not in known:
            return False
        secret = await self.kube.get("v1", "Secret", names.CONNECTION_SECRET, ctx.namespace)
        marked = ((secret or {}).get("metadata", {}).get("annotations") or {}).get(
            lifecycle.FINGERPRINT_ANNOTATION
        )
        return marked == fingerprint

    # --- destroy --------------------------------------------------------------------------------

    def watch_deletion(
        self, body: Mapping[str, Any], lock: Callable[[tuple[str, str]], asyncio.Lock]
    ) -> None:
        """A session event: when it is being deleted and holds the finalizer, finalize it (once).
        `lock` gives the reconciler's lock of a session, so no `up` of it runs during the destroy."""
        meta = body.get("metadata") or {}
        if not meta.get("deletionTimestamp") or not rcloud.has_finalizer(body):
            return
        uid = meta["uid"]
        if uid in self._finalizing:
            return
        task = asyncio.create_task(
            self._finalize(meta["namespace"], meta["name"], uid, lock((meta["namespace"], meta["name"]))),
            name=f"finalize {meta['namespace']}/{meta['name']}",
        )
        self._finalizing[uid] = task
        task.add_done_callback(lambda _: self._finalizing.pop(uid, None))

    async def _finalize(self, namespace: str, name: str, uid: str, lock: asyncio.Lock) -> None:
        attempt = 0
        while True:
            try:
                session = await self.kube.get(names.API_VERSION, names.SESSION_KIND, name, namespace)
                if session is None or session["metadata"]["uid"] != uid or not rcloud.has_finalizer(session):
                    return  # gone, or an admin released it
                async with lock:  # not while an `up` of this session runs
                    await self._destroy(session)
                self.forget(uid)
                return
            except CloudStackDestroyError as exc:
                delay = self.delay(attempt)
                attempt += 1
                log.warning("session %s/%s: %s (retry in %.0fs)", namespace, name, exc, delay)
                await self._report_destroy_failure(namespace, name, uid, exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API server restarting, a bug: never give up on a destroy
                delay = UNEXPECTED_RETRY_SECONDS
                log.warning(
                    "session %s/%s: finalizing failed, retrying in %.0fs: %s", namespace, name, delay, exc
                )
            await asyncio.sleep(delay)

    async def _destroy(self, session: Obj) -> None:
        """Destroy the stack, then delete the namespace, then remove labenv's finalizer."""
        meta = session["metadata"]
        key = SessionKey(namespace=meta["namespace"], name=meta["name"])
        previous = session.get("status") or {}
        if self.runner is None:
            raise CloudStackDestroyError(f"stack {key.stack}: cannot destroy: {self.unavailable}")
        if previous.get("phase") != api.Phase.TERMINATING.value:
            await self._write_status(
                meta,
                rcloud.destroying_status(
                    previous, None, f"destroying the cloud stack {key.stack} before the namespace", _now()
                ),
            )
        await lifecycle.destroy_stacks(self.runner, key)
        log.info("stack %s destroyed", key.stack)
        if rcloud.destroy_failed(previous):
            cleared = lifecycle.destroy_failed_condition(None, int(meta.get("generation") or 0))
            message = f"cloud stack {key.stack} destroyed; deleting the namespace"
            await self._write_status(meta, rcloud.destroying_status(previous, cleared, message, _now()))
        lab = names.lab_namespace(meta["name"])
        namespace = await self.kube.get("v1", "Namespace", lab)
        if (
            namespace
            and (namespace["metadata"].get("labels") or {}).get(names.LABEL_SESSION_UID) == meta["uid"]
        ):
            await self.kube.delete("v1", "Namespace", lab)
        await self._release(meta["namespace"], meta["name"], meta["uid"])

    async def _release(self, namespace: str, name: str, uid: str) -> None:
        """Remove labenv's finalizer (and only it); a concurrent change means read and try again."""
        while True:
            current = await self.kube.get(names.API_VERSION, names.SESSION_KIND, name, namespace)
            if current is None or current["metadata"]["uid"] != uid or not rcloud.has_finalizer(current):
                return
            patch = rcloud.finalizers_patch(current, add=False)
            try:
                await self.kube.merge_patch(names.API_VERSION, names.SESSION_KIND, name, patch, namespace)
                return
            except ApiError as exc:
                if not exc.conflict:
                    raise

    async def _report_destroy_failure(self, namespace: str, name: str, uid: str, exc: Exception) -> None:
        events.post(_session_obj(namespace, name, uid), "Warning", "CloudStackDestroyFailed", str(exc))
        try:
            session = await self.kube.get(names.API_VERSION, names.SESSION_KIND, name, namespace)
            if session is None or session["metadata"]["uid"] != uid:
                return
            meta = session["metadata"]
            condition = lifecycle.destroy_failed_condition(exc, int(meta.get("generation") or 0))
            new = rcloud.destroying_status(session.get("status") or {}, condition, condition.message, _now())
            await self._write_status(meta, new)
        except LabenvError as error:  # the condition is a report; the retry goes on regardless
            log.warning("session %s/%s: could not report the failed destroy: %s", namespace, name, error)

    async def _write_status(self, meta: Mapping[str, Any], new: Obj) -> None:
        await self.kube.apply_status(
            names.API_VERSION, names.SESSION_KIND, meta["namespace"], meta["name"], new
        )


def _now() -> str:
    return api.timestamp(api.now())


# --- labenv doctor -------------------------------------------------------------------------------


@dataclass
class SessionStackSource:
    """The session stacks in the admin's backend, for `labenv doctor` (a `doctor.StackSource`): a
    stack whose LabSession (namespace and name) no longer exists is an orphan nobody will destroy."""

    kube: Kube
    runner: StackRunner
    provider: str = "pulumi"

    async def stacks(self) -> list[doctor.CloudStack]:
        found = await lifecycle.list_stacks(self.runner)  # stacks first, then sessions: see doctor
        sessions = await self.kube.list(names.API_VERSION, names.SESSION_KIND)
        live = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in sessions}
        uids = {(s["metadata"]["namespace"], s["metadata"]["name"]): s["metadata"]["uid"] for s in sessions}
        orphaned = {s.stack for s in lifecycle.orphans(found, live)}
        return [
            doctor.CloudStack(
                self.provider,
                s.stack,
                "" if s.stack in orphaned else uids[(s.namespace, s.name)],
                f"{s.namespace}/{s.name}",
            )
            for s in found
        ]

    async def delete(self, stack: doctor.CloudStack) -> None:
        namespace, _, name = stack.session.partition("/")
        await lifecycle.destroy_stacks(self.runner, SessionKey(namespace=namespace, name=name))


def doctor_sources(kube: Kube, config: str | None = None) -> list[SessionStackSource]:
    """The stack source `labenv doctor` audits when cloud settings are configured (none otherwise)."""
    if not (config or os.environ.get(CONFIG_ENV)):
        return []
    return [SessionStackSource(kube, make_runner(load_settings(config)))]
