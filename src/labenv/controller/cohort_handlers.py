"""Kopf handlers for LabCohorts: converge on change, and again (debounced) when a member changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from labenv import names
from labenv.controller.cohorts import CohortReconciler
from labenv.reconcile.cohort import Member

MEMBERS: Mapping[str, Any] = {names.LABEL_COHORT: kopf.PRESENT}


@kopf.index(names.GROUP, names.VERSION, names.SESSION_PLURAL, labels=MEMBERS)
def members_by_cohort(
    *, body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
) -> dict[tuple[str, str], Member]:
    return {(namespace or "", labels[names.LABEL_COHORT]): Member.from_body(body)}


@kopf.index(names.GROUP, names.VERSION, names.COHORT_PLURAL)
def cohorts_by_key(
    *, body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(namespace or "", name): dict(body)}


@kopf.on.resume(names.GROUP, names.VERSION, names.COHORT_PLURAL)
@kopf.on.create(names.GROUP, names.VERSION, names.COHORT_PLURAL)
@kopf.on.update(names.GROUP, names.VERSION, names.COHORT_PLURAL, field="spec")
async def converge_cohort(
    *, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **indexes: Any
) -> None:
    reconciler: CohortReconciler = memo.cohorts
    await reconciler.converge(body, list(indexes["members_by_cohort"].get((namespace or "", name), [])))


@kopf.on.event(names.GROUP, names.VERSION, names.SESSION_PLURAL, labels=MEMBERS)
async def member_changed(
    *, namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **indexes: Any
) -> None:
    key = (namespace or "", labels[names.LABEL_COHORT])
    members_by_cohort, cohorts_by_key = indexes["members_by_cohort"], indexes["cohorts_by_key"]

    def observe() -> tuple[Mapping[str, Any] | None, list[Member]]:
        bodies = cohorts_by_key.get(key)
        return (next(iter(bodies)) if bodies else None), list(members_by_cohort.get(key, []))

    memo.cohorts.schedule(key, observe)


@kopf.on.event(names.GROUP, names.VERSION, names.COHORT_PLURAL)
async def cohort_gone(*, type: str, namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":  # its sessions go by garbage collection (owner references)
        memo.cohorts.forget((namespace or "", name))
