"""A cohort of N learners on week21, against the floor measured in the same run on the same cluster:
`kubectl apply --server-side` of the same rendered objects for N sessions, then waiting for the same
readiness (every StatefulSet, Deployment and Job of those namespaces ready), and deleting the
namespaces until they are gone. Also: warm-pool claim to Ready, operator peak memory, API requests."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import yaml

from bench.harness import Bench, summary
from bench.start_session import rendered_state
from labenv import api, names, sessions
from labenv.kube.client import Kube
from labenv.reconcile import status as observe

UNIT = "week21"
POLL = 0.5


def _ready(items: list[dict[str, Any]]) -> bool:
    return all(observe.workload_state(o).ready for o in items)


def _workloads(bench: Bench, selector: str) -> list[dict[str, Any]]:
    out = bench.kubectl("get", "statefulsets,deployments,jobs", "-A", "-l", selector, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def _namespaces(bench: Bench, selector: str) -> int:
    out = bench.kubectl("get", "namespaces", "-l", selector, "-o", "name")
    return len(out.stdout.split())


def _wait(what: str, done: Any, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout:.0f}s")
        time.sleep(POLL)


def floor_objects(learners: list[str], tag: str) -> tuple[str, int]:
    """The objects labenv would apply for these learners, as one stream; and the workload count."""
    docs: list[dict[str, Any]] = []
    workloads = 0
    for learner in learners:
        objects, count = rendered_state(learner, UNIT, extra_labels={"bench": tag})
        docs.extend(objects)
        workloads += count
    return yaml.safe_dump_all(docs), workloads


def floor(bench: Bench, size: int) -> dict[str, float]:
    tag = f"floor{size}"
    stream, workloads = floor_objects([f"f{size}x{i}" for i in range(size)], tag)
    start = time.perf_counter()
    bench.kubectl("apply", "--server-side", "--field-manager=floor", "-f", "-", stdin=stream)
    _wait(
        "floor readiness",
        lambda: len(items := _workloads(bench, f"bench={tag}")) >= workloads and _ready(items),
    )
    ready = time.perf_counter() - start
    start = time.perf_counter()
    bench.kubectl("delete", "namespaces", "-l", f"bench={tag}", "--wait=false")
    _wait("floor teardown", lambda: _namespaces(bench, f"bench={tag}") == 0)
    return {"ready_s": ready, "teardown_s": time.perf_counter() - start}


def labenv(bench: Bench, size: int, tmp: Any) -> dict[str, float]:
    name = f"c{size}"
    spec = tmp / f"{name}.yaml"
    spec.write_text(
        yaml.safe_dump({"name": name, "unit": UNIT, "learners": [f"l{size}x{i}" for i in range(size)]})
    )
    start = time.perf_counter()
    bench.labenv("cohort", "apply", str(spec), "--timeout", "3600", "--output", "json")
    ready = time.perf_counter() - start
    start = time.perf_counter()
    bench.labenv("cohort", "delete", name)
    _wait("cohort teardown", lambda: _namespaces(bench, f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}") == 0)
    return {"ready_s": ready, "teardown_s": time.perf_counter() - start}


async def _claims(kubeconfig: str, count: int) -> list[float]:
    """Hand out the pool's ready sessions one by one; time from the claim until the operator reports
    Ready for the learner's spec, as `labenv start` waits for it."""
    latencies = []
    async with await Kube.connect(kubeconfig) as kube:
        for i in range(count):
            spec = api.SessionSpec(learner=f"walkin{i}", course="infra-36w", unit=UNIT)
            start = time.perf_counter()
            claimed = await sessions.claim(kube, names.DEFAULT_SESSION_NAMESPACE, spec)
            assert claimed is not None, "the warm pool ran dry"
            seen = claimed
            async for seen in sessions.wait_until_settled(kube, claimed, 120):  # noqa: B007
                pass  # until Ready or Failed for the claimed spec (observedGeneration caught up)
            assert sessions.phase_of(seen) == "Ready", sessions.message_of(seen)
            latencies.append(time.perf_counter() - start)
    return latencies


def warm_pool(bench: Bench, size: int, tmp: Any) -> dict[str, float]:
    spec = tmp / "warm.yaml"
    spec.write_text(yaml.safe_dump({"name": "warm", "unit": UNIT, "learners": [], "warmPool": size}))
    bench.labenv("cohort", "apply", str(spec), "--timeout", "1800")
    latencies = asyncio.run(_claims(str(bench.cluster.kubeconfig), size))
    bench.labenv("cohort", "delete", "warm")
    _wait("warm teardown", lambda: _namespaces(bench, f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}") == 0)
    return summary(latencies)


def run(bench: Bench, sizes: list[int], tmp: Any, operator_rss: Any) -> dict[str, Any]:
    """Floor and labenv for each size, one after the other on the same cluster and operator."""
    results: dict[str, Any] = {"sizes": {}}
    for size in sizes:
        before = bench.operator_requests()
        measured: dict[str, Any] = {"floor": floor(bench, size), "labenv": labenv(bench, size, tmp)}
        measured["ratio_ready"] = measured["labenv"]["ready_s"] / measured["floor"]["ready_s"]
        measured["ratio_teardown"] = measured["labenv"]["teardown_s"] / measured["floor"]["teardown_s"]
        made = bench.operator_requests() - before
        measured["operator_requests_per_session"] = made.total() / size
        measured["operator_requests_per_session_by_kind"] = {
            what: round(count / size, 1) for what, count in made.most_common()
        }
        measured["operator_peak_rss_mb"] = operator_rss()
        results["sizes"][str(size)] = measured
        print(json.dumps({str(size): measured}), flush=True)
    return results
