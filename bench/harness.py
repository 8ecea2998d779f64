"""What every benchmark needs: a local cluster of its own, the CRDs, the operator as a process,
timing, and a place for results."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labenv.localcluster.cluster import LocalCluster

RESULTS = Path(__file__).parent / "results"
CLUSTER = "labenv-bench"


@dataclass
class Bench:
    cluster: LocalCluster
    env: dict[str, str]

    def labenv(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "labenv.cli", *args],
            env=self.env,
            text=True,
            capture_output=True,
            check=True,
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.cluster.kubectl), *args],
            env=self.env,
            text=True,
            input=stdin,
            capture_output=True,
            check=True,
        )


@contextmanager
def bench_cluster() -> Iterator[Bench]:
    """A fresh cluster and operator for the whole run; the cluster is stopped afterwards."""
    cluster = LocalCluster(CLUSTER)
    cluster.down(purge=True)
    cluster.up()
    env = {**os.environ, **cluster.env, "KUBECONFIG": str(cluster.kubeconfig), "NO_COLOR": "1"}
    bench = Bench(cluster, env)
    bench.labenv("install")
    log = Path(tempfile.mkdtemp()) / "operator.log"
    with log.open("wb") as handle:
        operator = subprocess.Popen(
            [sys.executable, "-m", "labenv.controller"], env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    try:
        time.sleep(2)  # let the operator list and index before the first measurement
        yield bench
    finally:
        operator.terminate()
        operator.wait(20)
        cluster.down(purge=True)


def timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "runs": len(ordered),
    }


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
