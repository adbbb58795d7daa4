"""OULAD end to end: the committed mapping imports the real data (read in
place from ../shared/data/real/oulad), `churn train` fits it with the
cancellation label (a withdrawal) at weekly as-of times from day 14 of the
first presentation, with the demographics, the clicks by activity type, the
assessment submissions, their deadlines and the course calendar as
features, and LightGBM trained on the same table (`churn
features`), the same split and the same parameters reaches the same test AUC
(within 0.01). Skipped, with the reason, where the data is absent.

The test period is the last presentation (AAA 2014J: its 30 latest labelled
weekly as-of times), validated on the 20 weeks before a horizon's gap.
"""

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn_cli import ROOT, churn

OULAD = ROOT.parent / "shared" / "data" / "real" / "oulad" / "subset_3pres"
SNAPSHOTS = ["--from", "2013-02-15T00:00:00Z", "--every", "7d", "--horizon", "30d"]

pytestmark = pytest.mark.skipif(
    not (OULAD / "studentVle.csv.xz").is_file(), reason=f"OULAD is absent: {OULAD}"
)


def model_dir(models: Path, name: str) -> Path:
    [version] = [p for p in (models / name).iterdir() if p.is_dir()]
    return version


def test_oulad_trains_end_to_end_and_our_gbdt_equals_lightgbm_on_the_same_table(tmp_path):
    data = tmp_path / "oulad"
    churn("import", "--mapping", "examples/oulad/mapping.toml", "--out", str(data))
    report = json.loads((data / "import.json").read_text())
    for section in report["sections"]:
        assert section["read"] == section["imported"] + section["filtered"] + section["rejected"], section
    # One student-presentation has no registration date: the only reject.
    assert sum(s["rejected"] for s in report["sections"]) == 1
    # Submissions (joined to their assessments) are scored quiz attempts;
    # assessments with a date are the presentations' deadlines.
    submissions = next(s for s in report["sections"] if s["source"] == "submissions")
    assert (submissions["imported"], submissions["filtered"]) == (14_329, 76), "76 banked results left out"
    deadlines = next(s for s in report["sections"] if s["section"] == "deadlines")
    assert (deadlines["imported"], deadlines["filtered"]) == (21, 3), "3 exams have no date"

    models = tmp_path / "models"
    # No row or column sampling: both engines then fit the same function of
    # the same rows, and what differs is the engines (on ~200 test
    # withdrawals, sampling noise alone moves the AUC by more than 0.01).
    churn("train", "--data", str(data), *SNAPSHOTS, "--test-times", "30", "--valid-times", "20",
          "--set", "gbdt.bagging_fraction=1.0", "--set", "gbdt.feature_fraction=1.0",
          "--kind", "gbdt", "--name", "oulad", "--out", str(models), "--work", str(tmp_path / "train"),
          # The split's own model, like for like with LightGBM on the same split.
          "--no-refit", "--backtest", "1")
    model = model_dir(models, "oulad")
    card = json.loads((model / "model.json").read_text())
    training = card["training"]
    assert training["label"] == "cancellation"
    # Demographics and clicks by activity type are features, from the card.
    names = [f["name"] for f in card["features"]]
    for name in ["gender", "age_band", "imd_band", "studied_credits", "oucontent_count_7d",
                 "days_since_forumng", "quiz_active_days_30d", "days_to_course_end",
                 "days_since_course_start", "deadlines_missed", "days_to_next_deadline"]:
        assert name in names, name

    table_path = tmp_path / "table.parquet"
    churn("features", "--data", str(data), *SNAPSHOTS, "--out", str(table_path))
    table = pd.read_parquet(table_path)
    table = table[table["churned"].notna()].reset_index(drop=True)
    assert list(table.columns[3:]) == names, "the table's columns are the model's features"
    as_of = table["as_of"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    split = training["split"]
    parts = {
        "train": table[as_of.isin(split["train_as_of"])],
        "valid": table[as_of.isin(split["valid_as_of_all"])],
        "test": table[as_of.isin(split["test_as_of_all"])],
    }
    for name, rows in parts.items():
        assert len(rows) == split["rows"][name], name

    categorical = [f["name"] for f in card["features"] if f["kind"] == "categorical"]

    def frame(rows):
        x = rows[names].copy()
        for c in categorical:
            vocabulary = next(f["categories"] for f in card["features"] if f["name"] == c)
            x[c] = pd.Categorical(x[c], categories=vocabulary)
        return x

    p = card["parameters"]
    booster = lgb.train(
        {
            "objective": "binary", "learning_rate": p["learning_rate"], "num_leaves": p["num_leaves"],
            "min_data_in_leaf": p["min_data_in_leaf"], "min_sum_hessian_in_leaf": p["min_sum_hessian_in_leaf"],
            "feature_fraction": p["feature_fraction"], "bagging_fraction": p["bagging_fraction"],
            "bagging_freq": p["bagging_freq"], "lambda_l2": p["lambda_l2"], "max_bin": p["max_bin"],
            "cat_smooth": p["cat_smooth"], "cat_l2": p["cat_l2"], "max_cat_to_onehot": p["max_cat_to_onehot"],
            "max_cat_threshold": p["max_cat_threshold"], "min_data_per_group": p["min_data_per_group"],
            "seed": 42, "verbose": -1, "num_threads": 2, "deterministic": True,
        },
        lgb.Dataset(frame(parts["train"]), parts["train"]["churned"].to_numpy()),
        num_boost_round=p["num_iterations"],
        valid_sets=[lgb.Dataset(frame(parts["valid"]), parts["valid"]["churned"].to_numpy())],
        callbacks=[lgb.early_stopping(p["early_stopping_rounds"], verbose=False)],
    )
    test = parts["test"]
    theirs = roc_auc_score(test["churned"], booster.predict(frame(test), num_iteration=booster.best_iteration))

    # Ours: the margins (before calibration, so no ties) of `churn predict`
    # at each test as-of time, joined to the table's test rows.
    scored = []
    for t in split["test_as_of_all"]:
        out = tmp_path / "predictions.csv"
        churn("predict", "--model", str(model), "--data", str(data), "--as-of", t,
              "--out", str(out), "--work", str(tmp_path / "predict"))
        scored.append(pd.read_csv(out, usecols=["learner_id", "margin"]).assign(as_of=t))
    scored = pd.concat(scored)
    joined = test.assign(as_of=as_of[test.index]).merge(scored, on=["learner_id", "as_of"], how="left")
    assert joined["margin"].notna().all(), "every test row scored"
    ours = roc_auc_score(joined["churned"], joined["margin"])
    print(f"OULAD test AUC: churn-gbdt {ours:.4f} (best iteration {p['best_iteration']}), "
          f"LightGBM {theirs:.4f} (best iteration {booster.best_iteration}), {len(test)} test rows")
    assert abs(ours - theirs) <= 0.01
    assert ours > 0.6, "better than chance on the last presentation"
