"""Side by side: `churn import` of an events CSV against reading it and writing Parquet in Python polars.

    .venv/bin/python benches/import_vs_polars.py [--rows 10000000] [--repeat 2]

Writes (once, cached in --work) a CSV of --rows daily-count events of 200,000
learners: `user,day,kind,n` with RFC 3339 days, four known and two custom
event types. Then runs, each as its own process: `churn import --no-validate`
with a mapping of those columns to the contract (learners made from the
events, counts, custom types), and a polars script that reads the same CSV,
renames the columns, parses the times and writes the events as zstd Parquet
(the least a hand-written conversion does). Prints the best wall time and
peak RSS of both and the ratio (goal: churn at most 1.5x polars' time), and
checks that both wrote the same number of events.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]

PEER = """
import sys, polars as pl
source, out = sys.argv[1], sys.argv[2]
frame = pl.read_csv(source)
frame = frame.select(
    pl.col("user").alias("learner_id"),
    pl.col("day").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").dt.cast_time_unit("ms").alias("ts"),
    pl.col("kind").alias("event_type"),
    pl.col("n").alias("count"),
)
frame.write_parquet(out, compression="zstd")
"""

MAPPING = """
[sources.events]
path = "{csv}"
[learners]
from_events = true
plan = {{ value = "unknown" }}
acquisition_channel = {{ value = "unknown" }}
[[events]]
source = "events"
learner_id = {{ column = "user" }}
ts = {{ column = "day" }}
event_type = {{ column = "kind" }}
count = {{ column = "n" }}
"""


def run(cmd, repeat):
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = child.stdout.read().decode()
        _, status, usage = os.wait4(child.pid, 0)
        if status != 0:
            sys.exit(f"{cmd[0]} failed:\n{output}")
        runs.append((time.perf_counter() - start, usage.ru_maxrss / 2**20))
    return min(r[0] for r in runs), max(r[1] for r in runs)


def generate(csv, rows):
    rng = np.random.default_rng(42)
    start = np.datetime64("2026-01-01T00:00:00")
    days = rng.integers(0, 180, rows).astype("timedelta64[D]")
    kinds = np.array(["login", "video_watch", "quiz_attempt", "forum_post", "page_view", "badge_earned"])
    pl.DataFrame({
        "user": rng.integers(0, 200_000, rows),
        "day": pl.Series((start + days).astype("datetime64[ms]")).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kind": kinds[rng.integers(0, len(kinds), rows)],
        "n": rng.integers(1, 6, rows),
    }).with_columns(pl.format("u{}", pl.col("user")).alias("user")).write_csv(csv)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/churn-bench-import"))
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.rows)
        return
    args.work.mkdir(parents=True, exist_ok=True)

    subprocess.run(["cargo", "test", "--release", "--workspace", "--no-run", "--quiet"], cwd=ROOT, check=True)
    churn = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")) + "/release/churn"

    csv = args.work / f"events-{args.rows}.csv"
    if not csv.exists():
        # In a process of its own: a child forked from a parent holding the
        # generated frame would count the parent's pages in its peak RSS.
        subprocess.run([sys.executable, __file__, "--generate", str(csv), "--rows", str(args.rows)], check=True)
    mapping = args.work / "mapping.toml"
    mapping.write_text(MAPPING.format(csv=csv))
    peer_script = args.work / "peer.py"
    peer_script.write_text(PEER)

    ours = run([churn, "--quiet", "import", "--mapping", str(mapping), "--out", str(args.work / "ours"),
                "--no-validate"], args.repeat)
    peer = run([sys.executable, str(peer_script), str(csv), str(args.work / "polars.parquet")], args.repeat)

    ours_rows = pl.scan_parquet(args.work / "ours" / "events.parquet").select(pl.len()).collect().item()
    peer_rows = pl.scan_parquet(args.work / "polars.parquet").select(pl.len()).collect().item()
    size = csv.stat().st_size / 2**20
    print(f"{args.rows:,} event rows, CSV {size:,.0f} MiB")
    print(f"{'':28}{'wall s':>10}{'peak RSS GiB':>14}")
    print(f"{'churn import':28}{ours[0]:>10.2f}{ours[1]:>14.2f}")
    print(f"{'polars read_csv+parquet':28}{peer[0]:>10.2f}{peer[1]:>14.2f}")
    print(f"churn / polars time {ours[0] / peer[0]:.2f}x (goal <= 1.5x); same event rows: {ours_rows == peer_rows}")


if __name__ == "__main__":
    main()
