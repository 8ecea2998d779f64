"""`python -m bench`: run the benchmarks and write bench/results/*.json."""

from __future__ import annotations

import argparse
import json

from bench import start_session
from bench.harness import bench_cluster, save


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median reported)")
    args = parser.parse_args()
    with bench_cluster() as bench:
        result = start_session.run(bench, args.runs)
    path = save("start_week21", result)
    print(json.dumps(result, indent=2))
    print(
        f"labenv start week21 --wait: {result['labenv_s']['median']:.2f}s median vs floor "
        f"{result['floor_s']['median']:.2f}s: ratio {result['ratio']:.2f} (target <= 1.3); saved {path}"
    )


if __name__ == "__main__":
    main()
