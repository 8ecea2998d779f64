"""Install labenv's CRDs and the LabSession namespace into a cluster (local demo and tests).

On real clusters the Helm chart does this; both read the same CRD files.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from labenv import names
from labenv.catalog.loader import environments_root
from labenv.errors import ClusterUnavailable
from labenv.kube.client import Kube

CRD_API = "apiextensions.k8s.io/v1"
PEERING = "labenv"


def crds_dir() -> Path:
    """The chart's crds/ folder in a checkout, else the copy inside the wheel."""
    environments = environments_root()
    for candidate in (environments.parent / "charts" / "labenv" / "crds", environments.parent / "crds"):
        if candidate.is_dir():
            return candidate
    raise ClusterUnavailable("CRDs: charts/labenv/crds not found next to environments/")


def crd_documents() -> list[dict[str, object]]:
    return [
        doc
        for path in sorted(crds_dir().glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


async def install(kube: Kube, namespace: str, timeout: float = 60) -> None:
    crds = crd_documents()
    for crd in crds:
        await kube.apply(crd, names.CLI_FIELD_MANAGER)
    for crd in crds:
        await _established(kube, str(crd["metadata"]["name"]), timeout)  # type: ignore[index]
    kube.forget(names.API_VERSION)
    # Kopf only peers through an existing peering object: replicas of the operator find each other here.
    await kube.apply(
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}},
        names.CLI_FIELD_MANAGER,
    )
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {names.LABEL_PART_OF: "labenv"}},
        },
        names.CLI_FIELD_MANAGER,
    )


async def _established(kube: Kube, name: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        crd = await kube.get(CRD_API, "CustomResourceDefinition", name)
        conditions = {
            c["type"]: c["status"] for c in ((crd or {}).get("status") or {}).get("conditions") or []
        }
        if conditions.get("Established") == "True":
            return
        await asyncio.sleep(0.2)
    raise ClusterUnavailable(f"CRD {name} was not established within {timeout:.0f}s")
