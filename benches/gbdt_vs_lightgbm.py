"""Side by side: churn-gbdt against LightGBM (and forust, when installed) on the
same 1M x 40 churn-like table.

    .venv/bin/python benches/gbdt_vs_lightgbm.py [--rows 1000000] [--threads 2]

Generates the table (800k train / 200k test; missing values, categoricals,
interactions), trains LightGBM with 200 rounds, 31 leaves, lr 0.1, max_bin 255
(by default, and with `use_quantized_grad`, its fastest mode; XGBoost `hist` too),
times training, batch prediction of all rows, single-row prediction and
pred_contrib (1 thread), then runs our engine on the same data (the example
bench_gbdt, release build) and on LightGBM's own model, and prints ratios.
forust (pure-Rust GBDT with Python bindings) is the third column when it imports;
it has no native categoricals, so it sees the category codes as numbers.
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


def run_xgboost(Xtr, ytr, Xte, yte, cats, threads):
    """XGBoost `hist` with the same rounds, leaves (lossguide, 31) and bins; the
    categorical columns as native categoricals."""
    import xgboost as xgb

    types = ["c" if j in cats else "q" for j in range(Xtr.shape[1])]
    params = dict(objective="binary:logistic", tree_method="hist", grow_policy="lossguide", max_leaves=31,
                  max_depth=0, learning_rate=0.1, max_bin=255, nthread=threads, seed=0, max_cat_to_onehot=4)
    start = time.perf_counter()
    train = xgb.DMatrix(Xtr, ytr, feature_types=types, enable_categorical=True, nthread=threads)
    booster = xgb.train(params, train, num_boost_round=200)
    seconds = time.perf_counter() - start
    test = xgb.DMatrix(Xte, feature_types=types, enable_categorical=True, nthread=threads)
    return {"train_s": seconds, "auc": roc_auc_score(yte, booster.predict(test, output_margin=True))}


def run_forust(Xtr, ytr, Xte, yte, X, threads):
    """forust with the same growth (leaf-wise, 31 leaves, lr 0.1, 200 rounds, no L2)."""
    try:
        from forust import GradientBooster
    except ImportError:
        return None
    model = GradientBooster(iterations=200, learning_rate=0.1, grow_policy="LossGuide", max_leaves=31,
                            max_depth=64, l2=0.0, min_leaf_weight=1e-3, nbins=256, num_threads=threads)
    start = time.perf_counter()
    model.fit(Xtr, ytr)
    train_s = time.perf_counter() - start
    auc = roc_auc_score(yte, model.predict(Xte))
    start = time.perf_counter()
    model.predict(X)
    batch_s = time.perf_counter() - start
    single_us = per_row_us(lambda r: model.predict(r), [Xte[i : i + 1] for i in range(2000)])
    rows = Xte[:500]
    start = time.perf_counter()
    model.predict_contributions(rows, method="Shapley", parallel=False)
    shap_us = (time.perf_counter() - start) * 1e6 / len(rows)
    return {"train_s": train_s, "auc": auc, "batch_s": batch_s, "single_us": single_us, "shap_us": shap_us}


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

    # LightGBM's fastest mode (quantized gradients, 4 levels) and XGBoost `hist`.
    quantized = dict(params, use_quantized_grad=True, num_grad_quant_bins=4)
    start = time.perf_counter()
    lgb_q = lgb.train(quantized, lgb.Dataset(Xtr, ytr, categorical_feature=cats), num_boost_round=200)
    lgb_q_train = time.perf_counter() - start
    lgb_q_auc = roc_auc_score(yte, lgb_q.predict(Xte, raw_score=True))
    xgb = run_xgboost(Xtr, ytr, Xte, yte, cats, args.threads)

    forust = run_forust(Xtr, ytr, Xte, yte, X, args.threads)

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
        out = subprocess.run([os.path.join(target, "release", "examples", "bench_gbdt"), data_path, model_path,
                              str(args.threads), "train-only-quantized"], check=True, capture_output=True, text=True)
        ours_q = json.loads(out.stdout)

    mine, same = ours["our_model"], ours["lightgbm_model_in_our_engine"]
    f = forust or {}
    rows = [
        ("train (s)", lgb_train, ours["train_s"], f.get("train_s")),
        ("test AUC", lgb_auc, mine["test_auc"], f.get("auc")),
        (f"batch predict {args.rows} rows (s)", lgb_batch, mine["batch_predict_s"], f.get("batch_s")),
        ("batch predict, LightGBM's model (s)", lgb_batch, same["batch_predict_s"], None),
        ("single-row predict (us, Python call for the peers)", lgb_single, mine["single_row_predict_us"],
         f.get("single_us")),
        ("TreeSHAP, 1 thread (us/row), LightGBM's model", lgb_contrib, same["treeshap_us_per_row_1_thread"], None),
        ("TreeSHAP, 1 thread (us/row), each engine's model", lgb_contrib, mine["treeshap_us_per_row_1_thread"],
         f.get("shap_us")),
        ("TreeSHAP without lookup tables, ours (us/row)", lgb_contrib, same["treeshap_integrated_us_per_row"],
         None),
        ("TreeSHAP textbook recursion, ours (us/row)", lgb_contrib, mine["treeshap_reference_recursion_us_per_row"],
         None),
    ]
    print(f"{'':52} {'LightGBM':>11} {'churn-gbdt':>11} {'vs LightGBM':>12} {'forust':>11}")
    for name, theirs, ours_value, forust_value in rows:
        if "AUC" in name:
            ratio = f"{ours_value - theirs:+.4f}"
        else:
            ratio = f"{theirs / ours_value:.2f}x faster"
        third = "" if forust_value is None else f"{forust_value:11.4f}"
        print(f"{name:52} {theirs:11.4f} {ours_value:11.4f} {ratio:>12} {third}")
    print()
    print(f"Training, {len(Xtr):,} rows x {Xtr.shape[1]}, 200 rounds, 31 leaves, {args.threads} threads, same run:")
    fastest_peer = min(lgb_train, lgb_q_train)
    print(f"{'':44} {'train s':>9} {'test AUC':>9} {'vs LightGBM default':>20} {'fastest peer / this':>20}")
    for name, seconds, test_auc in [
        ("LightGBM default", lgb_train, lgb_auc),
        ("LightGBM use_quantized_grad (4 levels)", lgb_q_train, lgb_q_auc),
        ("XGBoost hist", xgb["train_s"], xgb["auc"]),
        ("churn-gbdt default", ours["train_s"], mine["test_auc"]),
        ("churn-gbdt use_quantized_grad (4 levels)", ours_q["train_s"], ours_q["test_auc"]),
    ]:
        print(f"{name:44} {seconds:9.2f} {test_auc:9.4f} {test_auc - lgb_auc:+20.4f} {fastest_peer / seconds:19.2f}x")
    print(json.dumps({"lightgbm": {"train_s": lgb_train, "auc": lgb_auc, "batch_s": lgb_batch,
                                   "single_us": lgb_single, "contrib_us": lgb_contrib},
                      "lightgbm_quantized": {"train_s": lgb_q_train, "auc": lgb_q_auc}, "xgboost_hist": xgb,
                      "churn_gbdt": ours, "churn_gbdt_quantized": ours_q, "forust": forust}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
