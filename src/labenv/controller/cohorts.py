"""Keep a LabCohort's sessions matching it, and count them: observe (indexes), plan, apply, report."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from labenv import api, names
from labenv.catalog.loader import Catalog
from labenv.errors import LabenvError
from labenv.kube.client import Kube
from labenv.reconcile import cohort

Obj = dict[str, Any]
COHORT_FIELD_MANAGER = "labenv-cohort"
STATUS_DEBOUNCE = 0.5  # seconds: one cohort status write for a burst of session changes
log = logging.getLogger(__name__)


def cohort_ref(body: Mapping[str, Any]) -> cohort.CohortRef:
    meta = body["metadata"]
    return cohort.CohortRef(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta["uid"],
        generation=int(meta.get("generation") or 0),
        spec=api.CohortSpec.model_validate(body.get("spec") or {}),
    )


class CohortReconciler:
    def __init__(self, kube: Kube, catalog: Catalog, parallel: int = 16) -> None:
        self.kube = kube
        self.catalog = catalog
        self._parallel = asyncio.Semaphore(parallel)
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def converge(self, body: Mapping[str, Any], members: Iterable[cohort.Member]) -> None:
        meta = body["metadata"]
        async with self._lock((meta["namespace"], meta["name"])):
            await self._converge(body, list(members))

    async def _converge(self, body: Mapping[str, Any], members: list[cohort.Member]) -> None:
        try:
            ref = cohort_ref(body)
            self.catalog.resolve(ref.spec.unit, ref.spec.course)
        except (LabenvError, ValidationError) as exc:
            await self._report_invalid(body, exc)
            return
        plan = cohort.plan(ref, members, api.now())
        await asyncio.gather(*(self._apply(obj) for obj in plan.apply))
        await asyncio.gather(*(self._delete(ref.namespace, name) for name in plan.delete))
        await self._write_status(body, ref, members)

    async def _apply(self, obj: Obj) -> None:
        async with self._parallel:
            await self.kube.apply(obj, COHORT_FIELD_MANAGER)

    async def _delete(self, namespace: str, name: str) -> None:
        async with self._parallel:
            await self.kube.delete(names.API_VERSION, names.SESSION_KIND, name, namespace)

    async def _write_status(
        self, body: Mapping[str, Any], ref: cohort.CohortRef, members: Iterable[cohort.Member]
    ) -> None:
        previous = body.get("status") or {}
        new = cohort.status(ref, members, previous, api.timestamp(api.now()))
        if {k: previous.get(k) for k in new} == new:
            return
        await self.kube.apply_status(names.API_VERSION, names.COHORT_KIND, ref.namespace, ref.name, new)

    async def _report_invalid(self, body: Mapping[str, Any], exc: Exception) -> None:
        meta = body["metadata"]
        message = str(exc).splitlines()[0]
        condition = api.Condition(
            type="Ready",
            status="False",
            reason="InvalidSpec",
            message=message,
            observedGeneration=int(meta.get("generation") or 0),
        )
        status = {
            "phase": api.Phase.FAILED.value,
            "observedGeneration": condition.observed_generation,
            "conditions": [
                condition.model_copy(update={"last_transition_time": api.timestamp(api.now())}).model_dump(
                    by_alias=True
                )
            ],
        }
        await self.kube.apply_status(
            names.API_VERSION, names.COHORT_KIND, meta["namespace"], meta["name"], status
        )

    def schedule(
        self,
        key: tuple[str, str],
        observe: Callable[[], tuple[Mapping[str, Any] | None, list[cohort.Member]]],
    ) -> None:
        """A member changed: converge the cohort a moment later, once for a burst of changes; a
        change that arrives while a pass runs gets a pass of its own afterwards."""
        self._dirty.add(key)
        if key in self._pending and not self._pending[key].done():
            return

        async def passes() -> None:
            while key in self._dirty:
                await asyncio.sleep(STATUS_DEBOUNCE)
                self._dirty.discard(key)
                body, members = observe()
                if body is None:
                    return
                try:
                    await self.converge(body, members)
                except LabenvError as exc:  # the next member event tries again
                    log.warning("cohort %s/%s: %s", key[0], key[1], exc)

        self._pending[key] = asyncio.create_task(passes())

    def forget(self, key: tuple[str, str]) -> None:
        self._locks.pop(key, None)
        self._dirty.discard(key)
        task = self._pending.pop(key, None)
        if task:
            task.cancel()
