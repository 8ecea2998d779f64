"""`labenv start week21 --wait` against the floor: `kubectl apply --server-side` of the same
rendered objects plus `kubectl wait` for the same readiness, median of several runs."""

from __future__ import annotations

import json
from typing import Any

import yaml

from bench.harness import Bench, summary, timed
from labenv.api import SessionSpec
from labenv.catalog.loader import default_catalog
from labenv.components import credentials
from labenv.reconcile import session

UNIT = "week21"


def rendered(learner: str) -> tuple[str, str, list[str]]:
    """The objects labenv would apply for this learner, as one YAML stream, and what to wait for."""
    catalog = default_catalog()
    spec = SessionSpec(learner=learner, course=catalog.default_course, unit=UNIT)
    resolved = session.resolve(catalog, spec)
    ctx = session.context(f"{learner}-{UNIT}", "labenv", spec, "ghcr.io/labenv/workspace:0.1.0")
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
    waits = [f"{r.kind.lower()}/{r.name}" for p in state.components for r in p.component.readiness]
    return ctx.namespace, yaml.safe_dump_all(objects), waits


def floor(bench: Bench, learner: str) -> None:
    namespace, stream, waits = rendered(learner)
    bench.kubectl("apply", "--server-side", "--field-manager=floor", "-f", "-", stdin=stream)
    for target in waits:
        condition = (
            "--for=condition=complete"
            if target.startswith("job/")
            else "--for=jsonpath={.status.readyReplicas}=1"
        )
        bench.kubectl("wait", condition, target, "-n", namespace, "--timeout=300s")


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
    result = {"floor_s": summary(floors), "labenv_s": summary(labenvs)}
    result["ratio"] = result["labenv_s"]["median"] / result["floor_s"]["median"]
    return result
