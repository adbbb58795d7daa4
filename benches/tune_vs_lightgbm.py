"""Side by side: `churn tune` against LightGBM tuned by a random search with the
same number of trials on the same backtest folds (issue 21).

    .venv/bin/python benches/tune_vs_lightgbm.py [--learners 50000] [--trials 27] [--seed 7]

Simulates a platform (180 days), then:

- ours: `churn tune --kind gbdt --trials N` (successive halving over the
  backtest folds: every candidate on the newest fold, the best third on one more
  fold, the settings given always carried along), then `churn train --config`
  with the winner, whose card gives the backtest folds (training, validation and
  test as-of times) and the winner's mean test AUC over them;
- the peer: `churn features` (the same rows, value for value, as the training
  table), then N candidates drawn from the same space (the first LightGBM's
  defaults as churn's: 31 leaves, 0.05, 50 rows per leaf), each fitted with
  early stopping (50 rounds, log loss) on every fold's training and validation
  rows and scored by mean test AUC over the folds: the search a data scientist
  writes with LightGBM and a loop.

Prints both winners' mean AUC over the folds and the wall times (ours: the tune
command alone; the peer: its search alone, the table already in memory).
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

from churn_run import churn_bin, run  # noqa: E402


def draw(rng: np.random.Generator) -> dict:
    log_uniform = lambda low, high: math.exp(rng.uniform(math.log(low), math.log(high)))  # noqa: E731
    return {
        "num_leaves": int(round(log_uniform(7, 127))),
        "learning_rate": log_uniform(0.01, 0.3),
        "min_data_in_leaf": int(round(log_uniform(5, 300))),
        "feature_fraction": rng.uniform(0.5, 1.0),
        "bagging_fraction": rng.uniform(0.5, 1.0),
        "lambda_l2": log_uniform(1e-3, 30.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=50_000)
    parser.add_argument("--trials", type=int, default=27)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        run("simulate", "--learners", str(args.learners), "--days", "180", "--seed", str(args.seed),
            "--out", str(data))
        threads = ["--threads", str(args.threads)]

        start = time.perf_counter()
        subprocess.run([churn_bin(), "--quiet", *threads, "tune", "--data", str(data), "--kind", "gbdt",
                        "--trials", str(args.trials), "--tuned", str(tmp / "tune/tuned.toml"),
                        "--work", str(tmp / "work")], check=True, capture_output=True)
        ours_seconds = time.perf_counter() - start
        run("train", "--data", str(data), "--kind", "gbdt", "--config", str(tmp / "tune/tuned.toml"),
            "--out", str(tmp / "models"), "--work", str(tmp / "work"))
        (version,) = [d for d in (tmp / "models/churn").iterdir() if d.is_dir()]
        card = json.loads((version / "model.json").read_text())
        folds = card["metrics"]["backtest"]["folds"]
        ours_auc = card["metrics"]["backtest"]["roc_auc"]["mean"]
        searches = json.loads((tmp / "tune/trials.json").read_text())
        fits = searches[0]["fits"]

        run("features", "--data", str(data), "--out", str(tmp / "table.parquet"))
        table = pl.read_parquet(tmp / "table.parquet").filter(pl.col("churned").is_not_null())
        as_of = table["as_of"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy()
        features = [f["name"] for f in card["features"]]
        categorical = [f["name"] for f in card["features"] if f["kind"] == "categorical"]
        frame = table.select(features).to_pandas()
        for c in categorical:
            frame[c] = frame[c].astype("category")
        y = table["churned"].to_numpy()
        parts = [
            {name: np.isin(as_of, fold[f"{name}_as_of"]) for name in ("train", "valid", "test")}
            for fold in folds
        ]

        rng = np.random.default_rng(args.seed)
        candidates = [{"num_leaves": 31, "learning_rate": 0.05, "min_data_in_leaf": 50,
                       "feature_fraction": 0.9, "bagging_fraction": 0.9, "lambda_l2": 1.0}]
        candidates += [draw(rng) for _ in range(args.trials - 1)]
        start = time.perf_counter()
        scored = []
        for params in candidates:
            aucs = []
            for part in parts:
                booster = lgb.train(
                    {"objective": "binary", "verbose": -1, "num_threads": args.threads, "seed": args.seed,
                     "bagging_freq": 1 if params["bagging_fraction"] < 1 else 0, **params},
                    lgb.Dataset(frame[part["train"]], y[part["train"]]),
                    num_boost_round=1000,
                    valid_sets=[lgb.Dataset(frame[part["valid"]], y[part["valid"]])],
                    callbacks=[lgb.early_stopping(50, verbose=False)],
                )
                p = booster.predict(frame[part["test"]], num_iteration=booster.best_iteration)
                aucs.append(roc_auc_score(y[part["test"]], p))
            scored.append((float(np.mean(aucs)), params))
        peer_seconds = time.perf_counter() - start
        peer_auc, peer_params = max(scored, key=lambda s: s[0])

        print(f"{args.learners} learners x 180 days, {len(folds)} backtest folds "
              f"(test {', '.join(f['test_as_of'][0] for f in folds)}), {args.trials} trials each, "
              f"{args.threads} threads")
        print("| search | fits | wall | winner's mean test AUC over the folds |")
        print("|---|---:|---:|---:|")
        print(f"| churn tune (successive halving) | {fits} | {ours_seconds:.1f} s | {ours_auc:.4f} |")
        print(f"| LightGBM random search | {args.trials * len(folds)} | {peer_seconds:.1f} s | {peer_auc:.4f} |")
        print(f"- AUC: churn {ours_auc - peer_auc:+.4f} against LightGBM (goal: within 0.003 or better); "
              f"time: {peer_seconds / ours_seconds:.2f}x faster")
        print(json.dumps({"ours": {"auc": ours_auc, "seconds": ours_seconds, "fits": fits},
                          "lightgbm": {"auc": peer_auc, "seconds": peer_seconds, "params": peer_params}}))


if __name__ == "__main__":
    main()
