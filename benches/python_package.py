"""Side by side in one Python process: the `churn` package against its peers.

    .venv/bin/python benches/python_package.py [--rows 1000000] [--threads 2]
        [--data /path/to/100k-learner/data] [--explain-rows 2000]

1. `GBDTClassifier.fit` vs `lightgbm.LGBMClassifier.fit` on the same 800k x 40
   table as benches/gbdt_vs_lightgbm.py (200 rounds, 31 leaves, lr 0.1,
   max_bin 255, 4 categorical columns), both with --threads; AUC on the 200k
   held-out rows. Goal: no slower, same AUC.
2. Exact contributions on --explain-rows held-out rows, one thread each:
   `GBDTClassifier.shap_values` vs `shap.TreeExplainer(lgbm).shap_values`
   and LightGBM `pred_contrib` (each explainer on its own library's model
   of the same size). Goal: >= 10x.
3. `churn.features` (pyarrow reads the tables, then the package) vs the CLI
   `churn features` (reads and writes Parquet) on --data. Goal: bindings'
   overhead <= 10%.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import shap  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

import churn  # noqa: E402
from churn.sklearn import GBDTClassifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
from gbdt_vs_lightgbm import make_table  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def fit_side_by_side(rows, threads):
    X, y, cats = make_table(rows)
    cut = int(rows * 0.8)
    Xtr, ytr, Xte, yte = X[:cut], y[:cut], X[cut:], y[cut:]
    params = dict(n_estimators=200, num_leaves=31, learning_rate=0.1, max_bin=255)
    ours, t_ours = timed(lambda: GBDTClassifier(**params, categorical_features=cats, random_state=0,
                                                n_jobs=threads).fit(Xtr, ytr))
    theirs, t_theirs = timed(lambda: lgb.LGBMClassifier(**params, random_state=0, n_jobs=threads,
                                                        verbose=-1).fit(Xtr, ytr, categorical_feature=cats))
    auc_ours = roc_auc_score(yte, ours.predict_proba(Xte)[:, 1])
    auc_theirs = roc_auc_score(yte, theirs.predict_proba(Xte)[:, 1])
    print(f"fit {cut} x {X.shape[1]}, 200 rounds, {threads} threads:")
    print(f"  churn GBDTClassifier   {t_ours:7.2f} s  AUC {auc_ours:.4f}")
    print(f"  LightGBM LGBMClassifier {t_theirs:6.2f} s  AUC {auc_theirs:.4f}")
    print(f"  ratio LightGBM / churn: {t_theirs / t_ours:.2f}x (goal >= 1.0), AUC diff {auc_ours - auc_theirs:+.4f}")
    return ours, theirs, Xte


def explain_side_by_side(ours, theirs, Xte, n):
    rows = Xte[:n]
    # Both explainers are built before the clock starts (ours on first use).
    ours.set_params(n_jobs=1)
    ours.shap_values(rows[:1])
    _, t_ours = timed(lambda: ours.shap_values(rows))
    booster = theirs.booster_
    _, t_contrib = timed(lambda: booster.predict(rows, pred_contrib=True, num_threads=1))
    explainer = shap.TreeExplainer(booster)
    _, t_shap = timed(lambda: explainer.shap_values(rows))
    print(f"exact contributions, {n} rows, 1 thread:")
    print(f"  churn shap_values        {1e6 * t_ours / n:9.1f} us/row")
    print(f"  LightGBM pred_contrib    {1e6 * t_contrib / n:9.1f} us/row  ({t_contrib / t_ours:.1f}x)")
    print(f"  shap.TreeExplainer       {1e6 * t_shap / n:9.1f} us/row  ({t_shap / t_ours:.1f}x, goal >= 10x)")


def features_side_by_side(data, churn_bin):
    now = "2030-01-01T00:00:00Z"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "table.parquet"
        _, t_cli = timed(lambda: subprocess.run(
            [churn_bin, "--quiet", "features", "--data", str(data), "--out", str(out), "--now", now],
            check=True, stdout=subprocess.DEVNULL))
        cli_rows = pq.read_metadata(out).num_rows

    tables, t_read = timed(lambda: [pq.read_table(data / f"{t}.parquet")
                                    for t in ("learners", "courses", "events")])
    table, t_py = timed(lambda: churn.features(*tables, now=now))
    assert table.num_rows == cli_rows, (table.num_rows, cli_rows)
    print(f"features of {data} ({cli_rows} rows):")
    print(f"  churn CLI (polars reads, computes, writes Parquet)  {t_cli:6.2f} s")
    print(f"  churn.features on tables in memory                  {t_py:6.2f} s"
          f"  ({100 * (t_py / t_cli - 1):+.1f}% vs the CLI; goal <= +10%)")
    print(f"  pyarrow.parquet.read_table of the three tables      {t_read:6.2f} s"
          f"  (read + features: {100 * ((t_read + t_py) / t_cli - 1):+.1f}% vs the CLI)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--explain-rows", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--churn-bin", default=os.environ.get(
        "CHURN_BIN", str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "churn")))
    args = parser.parse_args()
    ours, theirs, Xte = fit_side_by_side(args.rows, args.threads)
    explain_side_by_side(ours, theirs, Xte, args.explain_rows)
    features_side_by_side(args.data, args.churn_bin)


if __name__ == "__main__":
    main()
