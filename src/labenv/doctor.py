"""`labenv doctor`: find what labenv created that no LabSession owns any more, and remove it on request.

Three kinds of orphans:

- lab namespaces labelled `managed-by=labenv` whose session UID no longer exists (the sweeper's own
  rule, `find_orphans`, which the operator's sweeper shares; everything inside goes with the namespace);
- objects labelled for a session (`labenv.io/session`, `labenv.io/session-namespace`) that does not
  exist, outside any lab namespace (what lives in a live session's namespace is the learner's);
- cloud stacks made for a session that is gone, from the stack sources registered with
  `register_stack_source` (the cloud integration fills this hook; none are registered by default).

Everything is listed before the sessions are, so a session created during the audit cannot make its
fresh objects look orphaned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from labenv import names
from labenv.kube.client import ApiError, Kube

Obj = dict[str, Any]
MANAGED_NAMESPACES = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY},{names.LABEL_SESSION_UID}"


async def find_orphans(kube: Kube) -> tuple[list[dict[str, Any]], list[str]]:
    """Sessions, and lab namespaces whose session is gone.

    Namespaces are listed before sessions: a namespace seen first was created for a session that
    already existed, so a session missing from the later list really is gone.
    """
    namespaces = await kube.list("v1", "Namespace", label_selector=MANAGED_NAMESPACES)
    sessions = await kube.list(names.API_VERSION, names.SESSION_KIND)
    live = {s["metadata"]["uid"] for s in sessions}
    orphans = [
        ns["metadata"]["name"]
        for ns in namespaces
        if ns["metadata"]["labels"].get(names.LABEL_SESSION_UID) not in live
        and not ns["metadata"].get("deletionTimestamp")
    ]
    return sessions, orphans


# Namespaced kinds labenv writes (tenancy and every component template); cluster-scoped kinds are
# refused by the renderer, so nothing labenv makes can outlive its namespace unseen.
LABELLED_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
)
SESSION_OBJECTS = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY},{names.LABEL_SESSION}"


@dataclass(frozen=True)
class CloudStack:
    """A cloud stack (bucket, database, account...) made for one LabSession."""

    provider: str
    name: str
    session_uid: str
    session: str = ""  # `<namespace>/<name>`, for people reading the report


@dataclass(frozen=True)
class Orphan:
    kind: str
    name: str
    namespace: str | None
    reason: str
    api_version: str = "v1"
    provider: str | None = None  # cloud stacks only
    stack: CloudStack | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "reason": self.reason,
            "apiVersion": self.api_version,
            "provider": self.provider,
        }


class StackSource(Protocol):
    """Lists and deletes the cloud stacks one provider integration made for LabSessions."""

    provider: str

    async def stacks(self) -> Sequence[CloudStack]: ...

    async def delete(self, stack: CloudStack) -> None: ...


_STACK_SOURCES: list[StackSource] = []


def register_stack_source(source: StackSource) -> None:
    """Called by a cloud integration at import time so that `labenv doctor` audits its stacks."""
    _STACK_SOURCES.append(source)


def stack_sources() -> list[StackSource]:
    return list(_STACK_SOURCES)


@dataclass(frozen=True)
class Report:
    orphans: list[Orphan]
    sessions: int
    lab_namespaces: int

    @property
    def clean(self) -> bool:
        return not self.orphans


def _session_key(obj: Obj) -> tuple[str, str]:
    labels = obj["metadata"].get("labels") or {}
    return labels.get(names.LABEL_SESSION_NAMESPACE, ""), labels[names.LABEL_SESSION]


async def _labelled_objects(kube: Kube) -> list[Obj]:
    found: list[Obj] = []
    for api_version, kind in LABELLED_KINDS:
        try:
            found.extend(await kube.list(api_version, kind, label_selector=SESSION_OBJECTS))
        except ApiError as exc:
            if not exc.not_found:  # a kind this cluster does not serve has nothing to audit
                raise
    return found


async def audit(kube: Kube, sources: Iterable[StackSource] | None = None) -> Report:
    objects = await _labelled_objects(kube)
    stacks = [
        (source, stack)
        for source in (stack_sources() if sources is None else sources)
        for stack in await source.stacks()
    ]
    managed = await kube.list(
        "v1", "Namespace", label_selector=f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
    )
    sessions, orphan_namespaces = await find_orphans(kube)  # namespaces, then sessions: see module doc

    live_keys = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in sessions}
    live_uids = {s["metadata"]["uid"] for s in sessions}
    live_labs = {names.lab_namespace(name) for _, name in live_keys}
    going = {ns["metadata"]["name"] for ns in managed if ns["metadata"].get("deletionTimestamp")}
    skip = live_labs | going | set(orphan_namespaces)

    orphans = [
        Orphan("Namespace", name, None, "its LabSession (by UID) no longer exists")
        for name in sorted(orphan_namespaces)
    ]
    for obj in objects:
        meta = obj["metadata"]
        key = _session_key(obj)
        if key in live_keys or meta.get("namespace") in skip or meta.get("deletionTimestamp"):
            continue
        orphans.append(
            Orphan(
                obj["kind"],
                meta["name"],
                meta.get("namespace"),
                f"labelled for LabSession {key[0]}/{key[1]}, which does not exist",
                obj["apiVersion"],
            )
        )
    for source, stack in stacks:
        if stack.session_uid not in live_uids:
            orphans.append(
                Orphan(
                    "CloudStack",
                    stack.name,
                    None,
                    f"made for LabSession {stack.session or stack.session_uid}, which no longer exists",
                    api_version="",
                    provider=source.provider,
                    stack=stack,
                )
            )
    return Report(orphans, sessions=len(sessions), lab_namespaces=len(managed))


async def fix(kube: Kube, report: Report, sources: Iterable[StackSource] | None = None) -> list[Orphan]:
    """Delete every orphan of the report; returns those removed (already gone ones included)."""
    by_provider = {s.provider: s for s in (stack_sources() if sources is None else sources)}
    removed: list[Orphan] = []
    for orphan in report.orphans:
        if orphan.kind == "CloudStack":
            source = by_provider.get(orphan.provider or "")
            if source is None or orphan.stack is None:
                continue
            await source.delete(orphan.stack)
        else:
            await kube.delete(orphan.api_version, orphan.kind, orphan.name, orphan.namespace)
        removed.append(orphan)
    return removed
