"""OULAD: churn's own features against hand-made ones, on the same rows and split.

    .venv/bin/python benches/oulad_handmade.py [--work churn-out/bench-oulad]

Imports the three OULAD presentations with the committed mapping
(examples/oulad/mapping.toml), then takes the (learner, as-of) rows of `churn
features` at weekly as-of times from day 14 of the first presentation (30-day
horizon, cancellation = withdrawal) and the split of `churn train` (test: the
30 latest labelled as-of times, i.e. the last presentation; validation: the
20 before a horizon's gap). On those rows it trains:

1. churn-gbdt (`churn train`, scored by `churn predict`'s margins);
2. LightGBM on churn's table (the same columns; the engine comparison);
3. LightGBM on hand-made features computed with pandas from the raw OULAD
   tables, as a data scientist would write them for this data set: clicks by
   activity type over 7/14/30 days and in total, days since each type, active
   days, the click trend, the day of the presentation and its length, the
   registration day, assessment scores, submissions, late and missed
   assessments and the days to the next deadline up to the as-of day, and the
   demographics;
4. LightGBM on both together.

Each is trained with seeds 1-5 (row and column sampling, hence the spread);
prints the mean test AUC, its range over the seeds, a bootstrap 95% interval
for seed 1 and the mean average precision. Nothing is asserted: this is the
figure BENCHMARKS.md reports.
"""

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
OULAD = ROOT.parent / "shared" / "data" / "real" / "oulad" / "subset_3pres"
SNAPSHOTS = ["--from", "2013-02-15T00:00:00Z", "--every", "7d", "--horizon", "30d"]
STARTS = {"2013B": "2013-02-01", "2013J": "2013-10-01", "2014B": "2014-02-01", "2014J": "2014-10-01"}
WINDOWS = [7, 14, 30]


def churn(*args):
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    binary = os.environ.get("CHURN_BIN", str(Path(target) / "release" / "churn"))
    subprocess.run([binary, "--quiet", *map(str, args)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read(name):
    return pd.read_csv(OULAD / f"{name}.csv.xz")


def handmade(rows: pd.DataFrame) -> pd.DataFrame:
    """Hand-made features of each (learner_id, as_of) row, from the raw tables."""
    key = ["code_module", "code_presentation", "id_student"]
    parts = rows["learner_id"].str.split("_", expand=True)
    base = pd.DataFrame({
        "code_module": parts[0], "code_presentation": parts[1], "id_student": parts[2].astype(int),
        "row": np.arange(len(rows)),
    })
    start = pd.to_datetime(base["code_presentation"].map(STARTS), utc=True)
    base["day"] = ((rows["as_of"].to_numpy() - start.to_numpy()) / np.timedelta64(1, "D")).astype(int)

    info = read("studentInfo").drop(columns=["final_result"])
    registration = read("studentRegistration")[key + ["date_registration"]]
    courses = read("courses")
    out = base.merge(info, on=key, how="left").merge(registration, on=key, how="left")
    out = out.merge(courses, on=["code_module", "code_presentation"], how="left")
    out["days_left"] = out["module_presentation_length"] - out["day"]

    # Clicks: (student, day, type) totals, then windows before each as-of day.
    clicks = read("studentVle").merge(read("vle")[["id_site", "activity_type"]], on="id_site")
    daily = clicks.groupby(key + ["date", "activity_type"], as_index=False)["sum_click"].sum()
    types = daily.groupby("activity_type")["sum_click"].sum().sort_values(ascending=False).index[:12]
    joined = base[key + ["row", "day"]].merge(daily, on=key)
    joined = joined[joined["date"] <= joined["day"]]
    age = joined["day"] - joined["date"]
    features = {}
    for w in WINDOWS + [10_000]:
        within = joined[age < w]
        label = "all" if w == 10_000 else f"{w}d"
        features[f"clicks_{label}"] = within.groupby("row")["sum_click"].sum()
        by_type = within[within["activity_type"].isin(types)].pivot_table(
            index="row", columns="activity_type", values="sum_click", aggfunc="sum")
        for t in by_type.columns:
            features[f"{t}_clicks_{label}"] = by_type[t]
    features["active_days_30d"] = joined[age < 30].groupby("row")["date"].nunique()
    features["active_days_all"] = joined.groupby("row")["date"].nunique()
    features["days_since_click"] = (joined["day"] - joined["date"]).groupby(joined["row"]).min()
    last = joined.assign(age=age).groupby(["row", "activity_type"])["age"].min().unstack()
    for t in types:
        if t in last.columns:
            features[f"days_since_{t}"] = last[t]
    clicked = pd.DataFrame(features).reindex(range(len(rows)))
    for c in clicked.columns:
        if not c.startswith("days_since"):
            clicked[c] = clicked[c].fillna(0)
    clicked["click_trend_7d"] = clicked["clicks_7d"] - (clicked["clicks_14d"] - clicked["clicks_7d"])

    # Assessments up to the as-of day: submitted (with score, lateness), and
    # the ones already due that were never submitted.
    assessments = read("assessments")
    submitted = read("studentAssessment").merge(assessments, on="id_assessment")
    sub = base[key + ["row", "day"]].merge(submitted, on=key)
    sub = sub[sub["date_submitted"] <= sub["day"]]
    sub["late"] = (sub["date_submitted"] > sub["date"]).astype(float)
    grouped = sub.groupby("row")
    assessed = pd.DataFrame({
        "assessments_submitted": grouped.size(),
        "assessment_mean_score": grouped["score"].mean(),
        "assessment_last_score": sub.sort_values("date_submitted").groupby("row")["score"].last(),
        "assessments_late": grouped["late"].sum(),
        "days_since_submission": (sub["day"] - sub["date_submitted"]).groupby(sub["row"]).min(),
    }).reindex(range(len(rows)))
    due = base[key + ["row", "day"]].merge(assessments, on=["code_module", "code_presentation"])
    due = due[due["date"] <= due["day"]]
    due_n = due.groupby("row").size().reindex(range(len(rows))).fillna(0)
    assessed["assessments_submitted"] = assessed["assessments_submitted"].fillna(0)
    assessed["assessments_missed"] = (due_n - assessed["assessments_submitted"]).clip(lower=0)
    upcoming = base[key + ["row", "day"]].merge(assessments, on=["code_module", "code_presentation"])
    upcoming = upcoming[upcoming["date"] > upcoming["day"]]
    assessed["days_to_next_deadline"] = (upcoming["date"] - upcoming["day"]).groupby(upcoming["row"]).min()

    result = pd.concat([
        out.set_index("row")[[
            "code_module", "gender", "region", "highest_education", "imd_band", "age_band",
            "num_of_prev_attempts", "studied_credits", "disability", "date_registration", "day",
            "days_left", "module_presentation_length",
        ]].sort_index(),
        clicked, assessed,
    ], axis=1)
    for c in ["code_module", "gender", "region", "highest_education", "imd_band", "age_band", "disability"]:
        result[c] = result[c].astype("category")
    return result.reset_index(drop=True)


def lightgbm_auc(x, parts, params):
    booster = lgb.train(
        params, lgb.Dataset(x["train"], parts["train"]["churned"].to_numpy()),
        num_boost_round=1000,
        valid_sets=[lgb.Dataset(x["valid"], parts["valid"]["churned"].to_numpy())],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    return booster.predict(x["test"], num_iteration=booster.best_iteration), booster.best_iteration


def interval(y, s, seed=42, n=1000):
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            values.append(roc_auc_score(y[i], s[i]))
    return np.percentile(values, [2.5, 97.5])


SEEDS = [1, 2, 3, 4, 5]


def ours_auc(work, data, seed, parts, masks, as_of, split):
    """churn-gbdt trained with `seed`: the test AUC of its margins (before
    calibration: an isotonic map would tie scores) from `churn predict`."""
    models = work / f"models-{seed}"
    subprocess.run(["rm", "-rf", str(models)], check=True)
    churn("train", "--data", data, *SNAPSHOTS, "--test-times", 30, "--valid-times", 20, "--kind", "gbdt",
          "--seed", seed, "--name", "oulad", "--out", models, "--work", work / "train")
    [model] = [p for p in (models / "oulad").iterdir() if p.is_dir()]
    card = json.loads((model / "model.json").read_text())
    assert card["training"]["split"] == split, "the same split whatever the seed"
    scored = []
    for t in split["test_as_of_all"]:
        out = work / "predictions.csv"
        churn("predict", "--model", model, "--data", data, "--as-of", t, "--out", out, "--work", work / "predict")
        scored.append(pd.read_csv(out, usecols=["learner_id", "margin"]).assign(as_of=t))
    margins = parts["test"].assign(as_of=as_of[masks["test"]]).merge(
        pd.concat(scored), on=["learner_id", "as_of"], how="left")["margin"].to_numpy()
    return margins, card["parameters"]["best_iteration"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="churn-out/bench-oulad")
    args = parser.parse_args()
    work = (ROOT / args.work).resolve()
    data, models = work / "oulad", work / "models"
    if not (OULAD / "studentVle.csv.xz").is_file():
        raise SystemExit(f"OULAD is absent: {OULAD}")
    clock = time.perf_counter()
    churn("import", "--mapping", "examples/oulad/mapping.toml", "--out", data)
    churn("features", "--data", data, *SNAPSHOTS, "--out", work / "table.parquet")
    subprocess.run(["rm", "-rf", str(models)], check=True)
    churn("train", "--data", data, *SNAPSHOTS, "--test-times", 30, "--valid-times", 20, "--kind", "gbdt",
          "--name", "oulad", "--out", models, "--work", work / "train")
    [model] = [p for p in (models / "oulad").iterdir() if p.is_dir()]
    card = json.loads((model / "model.json").read_text())
    split = card["training"]["split"]
    print(f"churn import + features + train: {time.perf_counter() - clock:.1f} s")

    table = pd.read_parquet(work / "table.parquet")
    table = table[table["churned"].notna()].reset_index(drop=True)
    as_of = table["as_of"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    masks = {
        "train": as_of.isin(split["train_as_of"]),
        "valid": as_of.isin(split["valid_as_of_all"]),
        "test": as_of.isin(split["test_as_of_all"]),
    }
    parts = {k: table[m] for k, m in masks.items()}
    y = parts["test"]["churned"].to_numpy()
    print("rows: " + ", ".join(f"{k} {len(v)} ({int(v['churned'].sum())} withdrew)" for k, v in parts.items()))

    names = [f["name"] for f in card["features"]]
    categorical = [f["name"] for f in card["features"] if f["kind"] == "categorical"]
    ours_table = table[names].copy()
    for c in categorical:
        ours_table[c] = ours_table[c].astype("category")
    clock = time.perf_counter()
    hand = handmade(table)
    print(f"hand-made features (pandas): {hand.shape[1]} columns in {time.perf_counter() - clock:.1f} s")
    both = pd.concat([ours_table.add_prefix("churn_"), hand], axis=1)
    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50,
              "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "lambda_l2": 1.0,
              "verbose": -1, "num_threads": 2, "deterministic": True}
    results = {"churn-gbdt on churn's features": [ours_auc(work, data, s, parts, masks, as_of, split)
                                                  for s in SEEDS]}
    for label, frame in [("LightGBM on churn's features", ours_table), ("LightGBM on hand-made features", hand),
                         ("LightGBM on both", both)]:
        x = {k: frame[m].reset_index(drop=True) for k, m in masks.items()}
        results[label] = [lightgbm_auc(x, parts, dict(params, seed=s)) for s in SEEDS]
    print(f"\ntest: {len(y)} rows, {int(y.sum())} withdrawals within 30 days; seeds {SEEDS}")
    print(f"{'model':<34} {'AUC mean':>9} {'seeds min-max':>15} {'95% interval (seed 1)':>22} {'AP':>7}")
    for label, runs in results.items():
        aucs = [roc_auc_score(y, scores) for scores, _ in runs]
        low, high = interval(y, runs[0][0])
        ap = np.mean([average_precision_score(y, scores) for scores, _ in runs])
        print(f"{label:<34} {np.mean(aucs):9.4f} {min(aucs):7.3f}-{max(aucs):.3f} "
              f"{'':8}[{low:.3f}, {high:.3f}] {ap:7.4f}")


if __name__ == "__main__":
    main()
