"""Is this replica the active one? Kopf pauses its handlers on every replica but the highest
priority; work that runs outside Kopf's handlers (the sweeper) asks here before acting."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from labenv import api
from labenv.kube.client import Kube

PEERING_API = "kopf.dev/v1"
PEERING_KIND = "ClusterKopfPeering"


def leads(peers: Mapping[str, Mapping[str, Any]], priority: int, now: datetime) -> bool:
    """Kopf's rule, from the peering object's status: no live replica has a higher priority, and
    none but this one has the same (equal priorities pause them all)."""
    live = [int(p.get("priority", 0)) for p in peers.values() if isinstance(p, Mapping) and _alive(p, now)]
    return not any(p > priority for p in live) and sum(1 for p in live if p == priority) <= 1


def _alive(peer: Mapping[str, Any], now: datetime) -> bool:
    """Kopf writes `lastseen` in ISO 8601 with an offset and removes a record by lifetime 0."""
    if not peer.get("lastseen"):
        return False
    seen = datetime.fromisoformat(str(peer["lastseen"]))
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    return seen + timedelta(seconds=int(peer.get("lifetime", 60))) > now


async def is_active(kube: Kube, peering: str, priority: int) -> bool:
    found = await kube.get(PEERING_API, PEERING_KIND, peering)
    return leads((found or {}).get("status") or {}, priority, api.now())
