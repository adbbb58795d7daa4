"""Side by side: the whole `churn train --features` command against LightGBM's
default fit on the same rows.

    .venv/bin/python benches/train_vs_lightgbm.py [--rows 1000000] [--threads 2] [--repeat 2]

Writes the GBDT benchmark's table (benches/gbdt_vs_lightgbm.py: 40 columns,
4 categorical, missing values) as Parquet, 80% train / 20% test, with a
`churned` label. Then runs, each timed in one process of its own:

- `churn train --features train.parquet --test test.parquet --label churned
  --kind gbdt` with 200 rounds at learning rate 0.1 (the rest of the command's
  defaults: a 20% validation split for early stopping and calibration,
  Platt calibration, TreeSHAP of a test sample, metrics with bootstrap
  intervals, the HTML report, the artifact), exact and with quantized
  gradients; the phases the command prints are shown;
- LightGBM: read the same Parquet file, `lgb.train` with its default
  parameters and 200 rounds on every training row (the fit alone, the least
  a hand-written script does).

Prints the wall times and the ratio (issue 24's goal: the whole command at
most 1.25x LightGBM's fit).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))

from gbdt_vs_lightgbm import make_table  # noqa: E402

PEER = """
import sys, time, json
import lightgbm as lgb, polars as pl
train, threads = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
frame = pl.read_parquet(train)
y = frame["churned"].to_numpy()
X = frame.drop("churned").to_numpy()
cats = [i for i, c in enumerate(frame.drop("churned").columns) if frame[c].dtype == pl.Int64]
params = dict(objective="binary", num_threads=threads, verbose=-1, seed=0)
booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=cats), num_boost_round=200)
print(json.dumps({"seconds": time.perf_counter() - start, "trees": booster.num_trees()}))
"""


def write_tables(work, rows):
    X, y, cats = make_table(rows)
    split = int(0.8 * rows)

    def frame(X, y):
        columns = {f"f{j}": (X[:, j].astype(np.int64) if j in cats else X[:, j]) for j in range(X.shape[1])}
        columns["churned"] = y.astype(np.int64)
        return pl.DataFrame(columns)

    frame(X[:split], y[:split]).write_parquet(work / "train.parquet")
    frame(X[split:], y[split:]).write_parquet(work / "test.parquet")


def timed(cmd):
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, out.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    subprocess.run(["cargo", "test", "--release", "--workspace", "--no-run", "--quiet"], cwd=ROOT, check=True)
    churn = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")) + "/release/churn"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # In a process of its own: its memory is not the peers'.
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'benches')!r}); "
                        f"from train_vs_lightgbm import write_tables; from pathlib import Path; "
                        f"write_tables(Path({tmp!r}), {args.rows})"], check=True)
        (work / "peer.py").write_text(PEER)
        base = [churn, "--threads", str(args.threads), "train", "--features", str(work / "train.parquet"),
                "--test", str(work / "test.parquet"), "--label", "churned", "--kind", "gbdt",
                "--out", str(work / "models"), "--set", "gbdt.num_iterations=200",
                "--set", "gbdt.learning_rate=0.1"]
        runs = {"churn train": base, "churn train, quantized": base + ["--set", "gbdt.use_quantized_grad=true"]}
        # Rounds alternate the three commands, so a drift of the shared
        # machine's speed touches each of them alike; each keeps its best.
        results = {}
        peer = None
        for _ in range(args.repeat):
            for name, cmd in runs.items():
                seconds, out = timed(cmd)
                if name not in results or seconds < results[name][0]:
                    phases = re.search(r"time: (.*)", out)
                    auc = re.search(r"test AUC (\d\.\d+)", out)
                    results[name] = (seconds, phases.group(1) if phases else "", auc.group(1) if auc else "")
            seconds = json.loads(timed([sys.executable, str(work / "peer.py"), str(work / "train.parquet"),
                                        str(args.threads)])[1])["seconds"]
            peer = seconds if peer is None else min(peer, seconds)
    print(f"{args.rows:,} rows (train {int(0.8 * args.rows):,} / test {args.rows - int(0.8 * args.rows):,}), "
          f"200 rounds, {args.threads} threads, best of {args.repeat}")
    print(f"{'':58}{'wall s':>8}{'/ LightGBM fit':>16}")
    print(f"{'LightGBM: read Parquet + lgb.train, defaults':58}{peer:8.2f}{1.0:15.2f}x")
    for name, (seconds, phases, auc) in results.items():
        print(f"{'the whole ' + name + ' command (test AUC ' + auc + ')':58}{seconds:8.2f}{seconds / peer:15.2f}x")
        print(f"    {phases}")
    print("goal: the whole command at most 1.25x LightGBM's fit")


if __name__ == "__main__":
    main()
