"""`labenv start week21 --wait` against the floor: `kubectl apply --server-side` of the same
rendered objects plus `kubectl wait` for the same readiness, median of several runs."""

from __future__ import annotations

import json
from typing import Any

import yaml

from bench.harness import Bench, summary, timed
from labenv import names
from labenv.api import SessionSpec
from labenv.catalog.loader import default_catalog
from labenv.components import credentials
from labenv.reconcile import session

UNIT = "week21"


def rendered_state(
    learner: str, unit: str, extra_labels: dict[str, str] | None = None, course: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The objects labenv would apply for this learner (all waves at once) and how many workloads
    must become ready."""
    catalog = default_catalog()
    spec = SessionSpec(learner=learner, course=course or catalog.default_course, unit=unit)
    resolved = session.resolve(catalog, spec)
    ctx = session.context(f"{learner}-{unit}", "labenv", spec, "ghcr.io/labenv/workspace:0.1.0")
    generated = credentials.missing(resolved.components, {})
    state = session.desired(catalog, resolved, ctx, f"floor-{learner}", generated)
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "labenv-generated", "namespace": ctx.namespace},
        "stringData": generated,
    }
    objects = [
        state.namespace,
        secret,
        *state.tenancy,
        state.connection_secret,
        *(o for p in state.components for o in p.objects),
    ]
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(extra_labels or {})
    # Owned by no LabSession: without this label the operator's sweeper leaves the floor alone.
    state.namespace["metadata"]["labels"].pop(names.LABEL_SESSION_UID)
    workloads = sum(len(p.component.readiness) for p in state.components)
    return objects, workloads


def floor(bench: Bench, learner: str) -> None:
    objects, _ = rendered_state(learner, UNIT)
    namespace = objects[0]["metadata"]["name"]
    bench.kubectl(
        "apply", "--server-side", "--field-manager=floor", "-f", "-", stdin=yaml.safe_dump_all(objects)
    )
    for obj in objects:
        if obj["kind"] == "Job":
            bench.kubectl(
                "wait",
                "--for=condition=complete",
                f"job/{obj['metadata']['name']}",
                "-n",
                namespace,
                "--timeout=300s",
            )
        elif obj["kind"] in ("StatefulSet", "Deployment"):
            bench.kubectl(
                "rollout",
                "status",
                f"{obj['kind'].lower()}/{obj['metadata']['name']}",
                "-n",
                namespace,
                "--timeout=300s",
            )


def labenv(bench: Bench, learner: str) -> None:
    out = bench.labenv("start", UNIT, "--learner", learner, "--wait", "--output", "json")
    assert json.loads(out.stdout)["status"]["phase"] == "Ready"


def run(bench: Bench, runs: int = 5) -> dict[str, Any]:
    floors, labenvs = [], []
    for i in range(runs):
        floors.append(timed(floor, bench, f"floor{i}"))
        labenvs.append(timed(labenv, bench, f"lab{i}"))
        bench.kubectl("delete", "namespace", f"lab-floor{i}-{UNIT}", "--wait=false")
        bench.labenv("stop", f"lab{i}-{UNIT}")
    result: dict[str, Any] = {"floor_s": summary(floors), "labenv_s": summary(labenvs)}
    result["ratio"] = result["labenv_s"]["median"] / result["floor_s"]["median"]
    return result
