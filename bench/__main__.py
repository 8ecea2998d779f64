"""`python -m bench [start|cohort|warm|all]`: run benchmarks and write bench/results/*.json."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench import cohort_scale, start_session
from bench.harness import bench_cluster, save


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("suite", nargs="?", default="all", choices=["start", "cohort", "warm", "all"])
    parser.add_argument("--runs", type=int, default=5, help="runs of `labenv start` (median reported)")
    parser.add_argument("--sizes", default="50,100,200", help="cohort sizes")
    parser.add_argument("--pool", type=int, default=20, help="warm pool size (one claim each)")
    args = parser.parse_args()
    if args.suite in ("start", "all"):
        with bench_cluster() as bench:
            result = start_session.run(bench, args.runs)
        path = save("start_week21", result)
        print(
            f"labenv start week21 --wait: {result['labenv_s']['median']:.2f}s median vs floor "
            f"{result['floor_s']['median']:.2f}s: ratio {result['ratio']:.2f} (target <= 1.3); saved {path}"
        )
    if args.suite in ("cohort", "all"):
        sizes = [int(s) for s in args.sizes.split(",")]
        # 110 pods per fake node; a week21 session runs five pods
        with bench_cluster(nodes=max(2, max(sizes) * 6 // 100 + 1)) as bench:
            result = cohort_scale.run(bench, sizes, Path(tempfile.mkdtemp()), bench.operator_peak_rss_mb)
        path = save("cohort_week21", result)
        print(json.dumps(result, indent=2))
        print(f"saved {path}")
    if args.suite in ("warm", "all"):
        with bench_cluster() as bench:
            claims = cohort_scale.warm_pool(bench, args.pool, Path(tempfile.mkdtemp()))
        path = save("warm_claim_week21", {"pool": args.pool, "claim_to_ready_s": claims})
        p95, median = claims["p95"], claims["median"]
        print(f"warm-pool claim to Ready: p95 {p95:.2f}s, median {median:.2f}s (target p95 <= 1 s)")


if __name__ == "__main__":
    main()
