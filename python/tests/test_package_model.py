"""`churn.load_model`: probabilities, contributions and top factors.

Against the CLI (`churn predict` on the committed model and sample: the same
learners, probabilities and first factors) and against LightGBM and shap: a
LightGBM model trained here, saved as model.txt and imported with `churn
import-lightgbm` (the README's path for models trained past one machine)
must predict as LightGBM and explain as `pred_contrib` and
`shap.TreeExplainer`.
"""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shap

import churn
from churn_cli import ROOT, churn as cli

DATA = ROOT / "data"
NOW = "2030-01-01T00:00:00Z"
AS_OF = "2026-05-01"
CATEGORICAL = ["plan", "acquisition_channel", "device", "lifecycle_stage"]


@pytest.fixture(scope="module")
def table():
    learners, courses, events = (pq.read_table(DATA / f"{t}.parquet") for t in ("learners", "courses", "events"))
    return churn.features(learners, courses, events, now=NOW, as_of=AS_OF)


def test_predictions_equal_churn_predict(table, tmp_path):
    model = churn.load_model("churn-gbdt", models_dir=ROOT / "models")
    assert model.kind == "gbdt" and model.card["features"][0]["name"] == model.feature_names[0]
    out = tmp_path / "p.csv"
    cli("predict", "--model", "churn-gbdt", "--data", "data", "--as-of", AS_OF, "--out", str(out),
        "--now", NOW, "--work", str(tmp_path / "work"))
    theirs = pd.read_csv(out).set_index("learner_id")
    ours = pd.DataFrame(
        {"p": model.predict(table), "top": [f[0][0] if f else None for f in model.top_factors(table, 3)]},
        index=table["learner_id"].to_pylist(),
    )
    base, contributions = model.explain(table)
    ours["margin"] = base + contributions.sum(axis=1)
    scored = ours.loc[theirs.index]  # the CLI scores the active learners of the table
    assert len(scored) == len(theirs) > 1000
    # predictions.csv rounds to 6 decimals.
    assert np.abs(scored["p"] - theirs["churn_probability"]).max() <= 5e-7
    assert np.abs(scored["margin"] - theirs["margin"]).max() <= 5e-7
    assert (scored["top"] == theirs["factor_1_feature"]).mean() > 0.99


def test_a_missing_feature_column_is_named(table):
    model = churn.load_model("churn-gbdt", models_dir=ROOT / "models")
    with pytest.raises(churn.ChurnError, match='no column "tenure_days"'):
        model.predict(table.drop_columns(["tenure_days"]))
    with pytest.raises(churn.ChurnError, match="no-such-model"):
        churn.load_model("no-such-model", models_dir=ROOT / "models")


def test_imported_lightgbm_explains_as_pred_contrib_and_shap(table, tmp_path):
    frame = table.to_pandas()
    features = [c for c in frame.columns if c not in ("learner_id", "as_of", "churned")]
    for c in CATEGORICAL:
        values = frame[c].astype(object).where(frame[c].notna(), None)
        frame[c] = pd.Categorical(values, categories=sorted(values.dropna().unique()))
    labelled = frame[frame["churned"].notna()]
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 15, "learning_rate": 0.1, "verbose": -1,
         "seed": 1, "num_threads": 1, "deterministic": True},
        lgb.Dataset(labelled[features], label=labelled["churned"].astype(float),
                    categorical_feature=CATEGORICAL),
        num_boost_round=40,
    )
    booster.save_model(str(tmp_path / "model.txt"))
    models = tmp_path / "models"
    cli("import-lightgbm", str(tmp_path / "model.txt"), "--name", "lgbm", "--out", str(models))
    model = churn.load_model("lgbm", models_dir=models)

    assert np.abs(model.predict(table) - booster.predict(frame[features])).max() < 1e-9
    base, ours = model.explain(table)
    contrib = booster.predict(frame[features], pred_contrib=True)
    assert np.abs(ours - contrib[:, :-1]).max() < 1e-6
    assert np.abs(base - contrib[:, -1]).max() < 1e-6
    numeric = [j for j, f in enumerate(features) if f not in CATEGORICAL]
    explained = shap.TreeExplainer(booster).shap_values(frame[features].iloc[:300])
    explained = explained[1] if isinstance(explained, list) else explained
    assert np.abs(ours[:300, numeric] - explained[:, numeric]).max() < 1e-6
