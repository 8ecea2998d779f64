"""What every benchmark needs: a local cluster of its own, the CRDs, the operator as a process,
timing, and a place for results."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
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
    operator: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0

    def labenv(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run([sys.executable, "-m", "labenv.cli", *args])

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self._run([str(self.cluster.kubectl), *args], stdin)

    def _run(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run to completion; a failure raises with the command's own error text."""
        done = subprocess.run(argv, env=self.env, text=True, input=stdin, capture_output=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv[:4])} failed: {done.stderr.strip()[-2000:]}")
        return done

    def operator_requests(self) -> Counter[str]:
        """The operator's own API requests so far by `verb resource`, from its metrics."""
        counts: Counter[str] = Counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("labenv_api_requests_total{"):
                    labels, value = line.rsplit(" ", 1)
                    verb = labels.split('verb="')[1].split('"')[0]
                    resource = labels.split('resource="')[1].split('"')[0]
                    counts[f"{verb} {resource}"] += int(float(value))
        return counts

    def operator_peak_rss_mb(self) -> float:
        """Peak resident memory of the operator process so far (VmHWM)."""
        assert self.operator is not None
        for line in Path(f"/proc/{self.operator.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def bench_cluster(nodes: int = 2) -> Iterator[Bench]:
    """A fresh cluster and operator for the whole run; the cluster is stopped afterwards."""
    cluster = LocalCluster(CLUSTER, nodes=nodes)
    cluster.down(purge=True)
    cluster.up()
    env = {**os.environ, **cluster.env, "KUBECONFIG": str(cluster.kubeconfig), "NO_COLOR": "1"}
    bench = Bench(cluster, env, metrics_port=_free_port())
    bench.labenv("install")
    log = Path(tempfile.mkdtemp()) / "operator.log"
    with log.open("wb") as handle:
        bench.operator = subprocess.Popen(
            [sys.executable, "-m", "labenv.controller"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**env, "LABENV_METRICS_PORT": str(bench.metrics_port)},
        )
    try:
        _wait_for_operator(bench)
        yield bench
    finally:
        bench.operator.terminate()
        bench.operator.wait(20)
        cluster.down(purge=True)


def _wait_for_operator(bench: Bench, timeout: float = 120) -> None:
    """Until the operator serves metrics (it starts them after loading the catalog), plus a moment
    to list and index before the first measurement."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            bench.operator_requests()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    time.sleep(2)


def timed(fn: Callable[..., Any], *args: Any) -> float:
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
