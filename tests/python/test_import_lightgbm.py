"""A LightGBM model imported with `churn import-lightgbm` predicts and explains
exactly as LightGBM does, from raw data.

LightGBM is trained on the feature table of the committed sample (`churn
features`, categorical columns as sorted pandas categories), saved as
model.txt and imported. `churn predict` then computes the features from the
raw events itself; its probabilities must equal LightGBM's on the table rows
(1e-9), and `churn explain --json` must give LightGBM's pred_contrib (1e-6).
"""

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from churn_cli import ROOT, churn

CATEGORICAL = ["plan", "acquisition_channel", "device", "lifecycle_stage"]




def test_imported_lightgbm_matches_lightgbm(tmp_path):
    table_path = tmp_path / "table.parquet"
    churn("features", "--data", "data", "--out", str(table_path), "--now", "2030-01-01T00:00:00Z")
    table = pd.read_parquet(table_path)
    features = [c for c in table.columns if c not in ("learner_id", "as_of", "churned")]
    for c in CATEGORICAL:
        values = table[c].astype(object).where(table[c].notna(), None)
        table[c] = pd.Categorical(values, categories=sorted(v for v in values.dropna().unique()))
    labelled = table[table["churned"].notna()]
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 20, "learning_rate": 0.1,
         "verbose": -1, "seed": 1, "num_threads": 1, "deterministic": True},
        lgb.Dataset(labelled[features], label=labelled["churned"].astype(float), categorical_feature=CATEGORICAL),
        num_boost_round=60,
    )
    model_txt = tmp_path / "model.txt"
    booster.save_model(str(model_txt))
    models = tmp_path / "models"
    churn("import-lightgbm", str(model_txt), "--name", "lgbm", "--out", str(models))

    last = table["as_of"].max()
    at = table[table["as_of"] == last].reset_index(drop=True)
    as_of = pd.Timestamp(last).strftime("%Y-%m-%dT%H:%M:%SZ")
    predictions = tmp_path / "predictions.csv"
    churn("predict", "--model", "lgbm", "--models", str(models), "--data", "data",
          "--as-of", as_of, "--out", str(predictions), "--work", str(tmp_path / "work"))
    ours = pd.read_csv(predictions).set_index("learner_id")
    theirs = pd.Series(booster.predict(at[features]), index=at["learner_id"].astype(str))
    assert set(ours.index) == set(theirs.index), "the same active learners"
    # predictions.csv rounds to 6 decimals.
    assert np.abs(ours.loc[theirs.index, "churn_probability"].to_numpy() - theirs.to_numpy()).max() <= 5e-7

    contrib = booster.predict(at[features], pred_contrib=True)
    for row in [0, len(at) // 2, len(at) - 1]:
        learner = str(at.loc[row, "learner_id"])
        out = json.loads(churn(
            "explain", "--model", "lgbm", "--models", str(models), "--data", "data", "--as-of", as_of,
            "--learner", learner, "--json", "--work", str(tmp_path / "work"), capture=True,
        ))
        ours_contrib = np.array([out["contributions"][f] for f in features])
        assert np.abs(ours_contrib - contrib[row, :-1]).max() < 1e-6, learner
        assert abs(out["base_value"] - contrib[row, -1]) < 1e-6
        assert abs(out["churn_probability"] - theirs[learner]) < 1e-9
