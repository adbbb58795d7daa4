"""Side by side: `churn features` against the same table written in pandas, in
polars (lazy) and in DuckDB (SQL).

    .venv/bin/python benches/features_vs_pandas.py [--learners 100000] [--days 180]

Simulates the platform once (cached in --work), then runs, each as its own
process on the same Parquet files, our CLI (release build),
benches/features_pandas.py, benches/features_polars.py and
benches/features_duckdb.py with rolling 14-day
snapshots and a 30-day horizon, end to end (read, validate/compute, write),
--repeat times each. Prints the best wall time and the peak RSS of each (from
wait4 of each child), the ratios, and checks that each peer's table holds the
same rows and values as ours.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, repeat):
    """Best wall seconds and largest peak RSS (GiB) of `repeat` runs, each its own process."""
    runs = [run_once(cmd) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]


def run_once(cmd):
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{cmd[0]} failed:\n{output}")
    return seconds, usage.ru_maxrss / 2**20, output.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side; the best wall time counts")
    parser.add_argument("--work", type=Path, default=Path("/tmp/churn-bench-features"))
    args = parser.parse_args()

    # The binary `cargo test --release --workspace` builds (same features as the tests);
    # build it the same way so no second polars build is needed.
    subprocess.run(["cargo", "test", "--release", "--workspace", "--no-run", "--quiet"], cwd=ROOT, check=True)
    churn = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")) + "/release/churn"
    data = args.work / f"sim-{args.learners}-{args.days}"
    if not (data / "events.parquet").exists():
        subprocess.run(
            [churn, "--quiet", "simulate", "--learners", str(args.learners), "--days", str(args.days),
             "--seed", "42", "--out", str(data)],
            check=True,
        )
    events = pd.read_parquet(data / "events.parquet", columns=["ts"]).shape[0]
    ours_out, pandas_out = args.work / "ours.parquet", args.work / "pandas.parquet"
    polars_out, duckdb_out = args.work / "polars.parquet", args.work / "duckdb.parquet"

    ours = run([churn, "--quiet", "features", "--data", str(data), "--out", str(ours_out),
                "--every", "14d", "--horizon", "30d", "--now", "2100-01-01T00:00:00Z"], args.repeat)
    peers = {}
    for name, script, out in [("pandas", "features_pandas.py", pandas_out),
                              ("polars (lazy)", "features_polars.py", polars_out),
                              ("DuckDB (SQL)", "features_duckdb.py", duckdb_out)]:
        peers[name] = run([sys.executable, str(ROOT / "benches" / script), "--data", str(data),
                           "--out", str(out), "--every-days", "14", "--horizon-days", "30"], args.repeat)

    a = pd.read_parquet(ours_out).sort_values(["learner_id", "as_of"]).reset_index(drop=True)
    print(f"{args.learners} learners, {events:,} events, {len(a):,} examples ({a['as_of'].nunique()} snapshots)")
    print(f"{'':24}{'wall s':>10}{'peak RSS GiB':>14}{'ours faster':>13}{'same table':>15}")
    print(f"{'churn features':24}{ours[0]:>10.2f}{ours[1]:>14.2f}")
    for (name, peer), out in zip(peers.items(), [pandas_out, polars_out, duckdb_out]):
        b = pd.read_parquet(out).sort_values(["learner_id", "as_of"]).reset_index(drop=True)
        same = len(a) == len(b) and (a["learner_id"] == b["learner_id"]).all() and (a["as_of"] == b["as_of"]).all()
        worst = 0.0
        if same:
            for column in a.columns[2:]:
                if a[column].dtype.kind == "f":
                    x, y = a[column].to_numpy(), b[column].to_numpy(dtype=float)
                    both = ~(np.isnan(x) & np.isnan(y))
                    worst = max(worst, float(np.nanmax(np.abs(x[both] - y[both]), initial=0.0)))
        verdict = f"{same} ({worst:.0e})" if same else "False"
        print(f"{name:24}{peer[0]:>10.2f}{peer[1]:>14.2f}{peer[0] / ours[0]:>12.1f}x{verdict:>15}")
    fastest = min(peers["polars (lazy)"][0], peers["DuckDB (SQL)"][0])
    print(f"{fastest / ours[0]:.1f}x the faster of polars and DuckDB (goal >= 2x at no more memory); "
          f"{peers['pandas'][0] / ours[0]:.1f}x pandas (goal >= 10x); our peak RSS {ours[1]:.2f} GiB (<= 4 GiB)")


if __name__ == "__main__":
    main()
