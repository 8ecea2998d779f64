"""A LabCohort and its current sessions -> the sessions to apply and delete, and its status.

Members are `<cohort>-<learner>` (stable across units, so advancing upgrades them in place). Warm-pool
sessions are `<cohort>-pool-<n>` with the placeholder learner `pool-<n>` until `labenv start` hands
one to a learner; a handed-over session stays a member with its name.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from labenv import api, names
from labenv.reconcile.status import with_transition_times

Obj = dict[str, Any]
MAX_FAILURES_REPORTED = 50


@dataclass(frozen=True)
class Member:
    """What the operator keeps of one session of a cohort (from its index, no API call)."""

    name: str
    learner: str
    unit: str
    ttl: str
    created: str
    phase: str
    message: str
    deleting: bool = False
    # The status describes the current spec (observedGeneration caught up): a member just moved to
    # another unit still shows its old Ready until the operator has looked at it.
    current: bool = True

    @property
    def pooled(self) -> bool:
        return self.learner.startswith("pool-")

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Member:
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        return cls(
            name=meta["name"],
            learner=spec.get("learner", ""),
            unit=spec.get("unit", ""),
            ttl=spec.get("ttl", api.DEFAULT_TTL),
            created=meta.get("creationTimestamp") or "",
            phase=status.get("phase") or "Pending",
            message=status.get("message") or "",
            deleting=bool(meta.get("deletionTimestamp")),
            current=status.get("observedGeneration") == meta.get("generation"),
        )


@dataclass(frozen=True)
class CohortRef:
    name: str
    namespace: str
    uid: str
    generation: int
    spec: api.CohortSpec


@dataclass(frozen=True)
class CohortPlan:
    apply: list[Obj]
    delete: list[str]


def _seconds(ttl: str) -> float:
    return api.parse_duration(ttl, "ttl", maximum=timedelta(days=3650)).total_seconds()


def session_ttl(spec: api.CohortSpec, created: datetime, current: str | None) -> str:
    """The cohort's lifetime for one session; never shorter than what the session already has
    (a learner's `labenv extend` survives the next cohort reconcile)."""
    if spec.ends_at:
        seconds = max(1.0, (api.parse_timestamp(spec.ends_at) - created).total_seconds())
    else:
        seconds = _seconds(spec.ttl or api.DEFAULT_TTL)
    if current:
        seconds = max(seconds, _seconds(current))
    return api.format_duration(timedelta(seconds=math.ceil(seconds)))


def _session(ref: CohortRef, name: str, learner: str, ttl: str, pooled: bool) -> Obj:
    labels = {
        names.LABEL_LEARNER: learner,
        names.LABEL_COURSE: ref.spec.course,
        names.LABEL_UNIT: ref.spec.unit,
        names.LABEL_COHORT: ref.name,
    }
    if pooled:
        labels[names.LABEL_POOL] = "true"
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.SESSION_KIND,
        "metadata": {
            "name": name,
            "namespace": ref.namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": names.COHORT_KIND,
                    "name": ref.name,
                    "uid": ref.uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "learner": learner,
            "course": ref.spec.course,
            "unit": ref.spec.unit,
            "ttl": ttl,
            **({"variant": ref.spec.variant} if ref.spec.variant else {}),
        },
    }


def plan(ref: CohortRef, members: Sequence[Member], now: datetime) -> CohortPlan:
    """Sessions to apply (missing or different) and to delete (learners removed, surplus pool)."""
    existing = {m.name: m for m in members if not m.deleting}
    wanted: dict[str, tuple[str, bool]] = {
        names.cohort_session_name(ref.name, learner): (learner, False) for learner in ref.spec.learners
    }
    pool_prefix = f"{ref.name}-pool-"
    for m in existing.values():  # handed-over pool sessions stay members
        if m.name.startswith(pool_prefix) and not m.pooled:
            wanted[m.name] = (m.learner, False)
    unclaimed = sorted(
        (m for m in existing.values() if m.name.startswith(pool_prefix) and m.pooled),
        key=lambda m: int(m.name.rsplit("-", 1)[1]),
    )
    keep_pool = unclaimed[: ref.spec.warm_pool]
    for m in keep_pool:
        wanted[m.name] = (m.learner, True)
    used = {int(m.name.rsplit("-", 1)[1]) for m in existing.values() if m.name.startswith(pool_prefix)}
    index = 0
    for _ in range(ref.spec.warm_pool - len(keep_pool)):
        while index in used:
            index += 1
        used.add(index)
        wanted[f"{pool_prefix}{index}"] = (names.pool_learner(index), True)

    to_apply: list[Obj] = []
    for name, (learner, pooled) in sorted(wanted.items()):
        current = existing.get(name)
        created = api.parse_timestamp(current.created) if current and current.created else now
        ttl = session_ttl(ref.spec, created, current.ttl if current else None)
        if current and (current.learner, current.unit, current.ttl) == (learner, ref.spec.unit, ttl):
            continue  # already as wanted: no write
        to_apply.append(_session(ref, name, learner, ttl, pooled))
    return CohortPlan(apply=to_apply, delete=sorted(set(existing) - set(wanted)))


def status(ref: CohortRef, members: Iterable[Member], previous: Mapping[str, Any], now: str) -> Obj:
    members = [m for m in members if not m.deleting]
    learners = [m for m in members if not m.pooled]
    phases = Counter(m.phase for m in learners)
    ready = sum(1 for m in learners if m.phase == "Ready" and m.current and m.unit == ref.spec.unit)
    warm = sum(
        1 for m in members if m.pooled and m.phase == "Ready" and m.current and m.unit == ref.spec.unit
    )
    failures = [
        {"learner": m.learner, "session": m.name, "reason": m.message}
        for m in sorted(learners, key=lambda m: m.name)
        if m.phase == "Failed"
    ]
    current = all(m.unit == ref.spec.unit for m in members)
    if failures:
        phase, reason = api.Phase.FAILED, "SessionsFailed"
    elif ready == len(learners) == len(ref.spec.learners) and current and warm >= ref.spec.warm_pool:
        phase, reason = api.Phase.READY, "AllSessionsReady"
    else:
        phase, reason = api.Phase.PROVISIONING, "SessionsProvisioning"
    message = f"{ready}/{len(ref.spec.learners)} learners ready, {warm}/{ref.spec.warm_pool} warm"
    condition = api.Condition(
        type="Ready",
        status="True" if phase == api.Phase.READY else "False",
        reason=reason,
        message=message,
        observedGeneration=ref.generation,
    )
    return {
        "phase": phase.value,
        "observedGeneration": ref.generation,
        "unit": ref.spec.unit,
        "learners": len(learners),
        "ready": ready,
        "warm": warm,
        "phases": dict(phases),
        "failures": failures[:MAX_FAILURES_REPORTED],
        "conditions": with_transition_times([condition], previous.get("conditions", []), now),
    }
