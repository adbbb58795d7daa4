"""Side by side: churn-gbdt against LightGBM on the same 1M x 40 churn-like table.

    .venv/bin/python benches/gbdt_vs_lightgbm.py [--rows 1000000] [--threads 2]

Generates the table (800k train / 200k test; missing values, categoricals,
interactions), trains LightGBM with 200 rounds, 31 leaves, lr 0.1, max_bin 255,
times training, batch prediction of all rows, single-row prediction and
pred_contrib (1 thread), then runs our engine on the same data (the example
bench_gbdt, release build) and on LightGBM's own model, and prints ratios.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]


def make_table(rows, width=40, n_cat=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, width))
    cats = list(range(width - n_cat, width))
    for j, col in enumerate(cats):
        X[:, col] = rng.integers(0, [5, 12, 40, 100][j], size=rows)
    logit = (
        0.9 * X[:, 0] - 0.7 * (X[:, 1] > 0.3) + 0.6 * X[:, 2] * (X[:, 3] > 0) + 0.5 * np.sin(2 * X[:, 4])
        + 0.4 * (X[:, 5] * X[:, 6]) - 0.3 * np.abs(X[:, 7]) + 0.2 * X[:, 8:16].sum(axis=1)
        + 0.6 * ((X[:, cats[2]] % 7) == 3) - 0.5 * ((X[:, cats[3]] % 5) == 1) - 1.0
    )
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    for col in range(0, 12):
        X[rng.random(rows) < 0.08, col] = np.nan
    return X, y, cats


def write_bin(path, Xtr, ytr, Xte, yte, cats):
    with open(path, "wb") as f:
        np.array([len(Xtr), len(Xte), Xtr.shape[1], len(cats)], dtype="<u8").tofile(f)
        np.array(cats, dtype="<u8").tofile(f)
        for a in (Xtr, ytr, Xte, yte):
            np.ascontiguousarray(a, dtype="<f8").tofile(f)


def per_row_us(fn, rows):
    start = time.perf_counter()
    for r in rows:
        fn(r)
    return (time.perf_counter() - start) * 1e6 / len(rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    X, y, cats = make_table(args.rows)
    split = int(0.8 * args.rows)
    Xtr, ytr, Xte, yte = X[:split], y[:split], X[split:], y[split:]

    params = dict(objective="binary", num_leaves=31, learning_rate=0.1, max_bin=255,
                  num_threads=args.threads, verbose=-1, seed=0)
    dataset = lgb.Dataset(Xtr, ytr, categorical_feature=cats, free_raw_data=False)
    start = time.perf_counter()
    booster = lgb.train(params, dataset, num_boost_round=200)
    lgb_train = time.perf_counter() - start
    lgb_auc = roc_auc_score(yte, booster.predict(Xte, raw_score=True))
    start = time.perf_counter()
    booster.predict(X, raw_score=True)
    lgb_batch = time.perf_counter() - start
    single_rows = [Xte[i : i + 1] for i in range(2000)]
    lgb_single = per_row_us(lambda r: booster.predict(r, raw_score=True), single_rows)
    one_thread = lgb.Booster(model_str=booster.model_to_string())
    contrib_rows = Xte[:2000]
    start = time.perf_counter()
    one_thread.predict(contrib_rows, pred_contrib=True, num_threads=1)
    lgb_contrib = (time.perf_counter() - start) * 1e6 / len(contrib_rows)

    with tempfile.TemporaryDirectory() as tmp:
        data_path = os.path.join(tmp, "data.bin")
        model_path = os.path.join(tmp, "lightgbm.txt")
        write_bin(data_path, Xtr, ytr, Xte, yte, cats)
        booster.save_model(model_path)
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "churn-gbdt", "--example", "bench_gbdt"],
                       cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
        out = subprocess.run([os.path.join(target, "release", "examples", "bench_gbdt"), data_path, model_path,
                              str(args.threads)], check=True, capture_output=True, text=True)
        ours = json.loads(out.stdout)

    mine, same = ours["our_model"], ours["lightgbm_model_in_our_engine"]
    rows = [
        ("train (s)", lgb_train, ours["train_s"]),
        ("test AUC", lgb_auc, mine["test_auc"]),
        (f"batch predict {args.rows} rows (s)", lgb_batch, mine["batch_predict_s"]),
        ("batch predict, LightGBM's model (s)", lgb_batch, same["batch_predict_s"]),
        ("single-row predict (us, incl. Python call for LightGBM)", lgb_single, mine["single_row_predict_us"]),
        ("TreeSHAP, 1 thread (us/row), LightGBM's model", lgb_contrib, same["treeshap_us_per_row_1_thread"]),
        ("TreeSHAP, 1 thread (us/row), our model", lgb_contrib, mine["treeshap_us_per_row_1_thread"]),
        ("TreeSHAP textbook recursion, ours (us/row)", lgb_contrib, mine["treeshap_reference_recursion_us_per_row"]),
    ]
    print(f"{'':58} {'LightGBM':>12} {'churn-gbdt':>12} {'ratio':>8}")
    for name, theirs, ours_value in rows:
        ratio = theirs / ours_value if "AUC" not in name else ours_value - theirs
        label = "x faster" if "AUC" not in name else "AUC diff"
        print(f"{name:58} {theirs:12.4f} {ours_value:12.4f} {ratio:8.3f} {label}")
    print(json.dumps({"lightgbm": {"train_s": lgb_train, "auc": lgb_auc, "batch_s": lgb_batch,
                                   "single_us": lgb_single, "contrib_us": lgb_contrib}, "churn_gbdt": ours}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
