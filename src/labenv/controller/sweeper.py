"""One loop for the whole operator: expire sessions and remove namespaces no session owns.

A Kopf timer per session would put a finalizer on every LabSession; one loop over a list call
costs two requests per interval whatever the number of sessions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from labenv import api, names
from labenv.controller import events
from labenv.doctor import find_orphans
from labenv.errors import LabenvError
from labenv.kube.client import Kube

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    expired: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


def _expiry(session: dict[str, Any]) -> datetime | None:
    status = session.get("status") or {}
    expires = status.get("expiresAt") if isinstance(status, dict) else None
    return api.parse_timestamp(expires) if isinstance(expires, str) else None


async def sweep_once(kube: Kube, now: datetime, delete_orphans: bool = True) -> SweepResult:
    result = SweepResult()
    sessions, orphans = await find_orphans(kube)
    for s in sessions:
        meta = s["metadata"]
        expiry = _expiry(s)
        if expiry is not None and expiry <= now and not meta.get("deletionTimestamp"):
            events.post(
                s,
                "Normal",
                "Expired",
                f"expired at {api.timestamp(expiry)}; deleting the session and its namespace",
            )
            await kube.delete(names.API_VERSION, names.SESSION_KIND, meta["name"], meta["namespace"])
            result.expired.append(f"{meta['namespace']}/{meta['name']}")
    if delete_orphans:
        for name in orphans:
            await kube.delete("v1", "Namespace", name)
    result.orphans = orphans
    return result


async def sweep_forever(kube: Kube, interval: float, active: Callable[[], Awaitable[bool]]) -> None:
    """Sweep every `interval` seconds while this replica is the active one."""
    while True:
        try:
            if not await active():
                await asyncio.sleep(interval)
                continue
            result = await sweep_once(kube, api.now())
            for name in result.expired:
                log.info("session %s expired and was deleted", name)
            for name in result.orphans:
                log.info("namespace %s had no session and was deleted", name)
        except LabenvError as exc:  # the API server may be restarting: try again next round
            log.warning("sweep failed, retrying in %.0fs: %s", interval, exc)
        await asyncio.sleep(interval)
