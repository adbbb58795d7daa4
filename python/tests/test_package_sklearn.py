"""`churn.GBDTClassifier` as a scikit-learn estimator.

- scikit-learn's own estimator checks (those that apply to a binary classifier);
- accuracy against LightGBM with the same parameters on the churn table;
- SHAP values against the exact Shapley values of the model's trees, computed
  here by brute force over every coalition (path-dependent expectations, the
  quantity TreeSHAP computes), independent of churn's algorithm;
- determinism across thread counts, pickling, early stopping, categories.
"""

import itertools
import json
import math
import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

import churn
from churn.sklearn import GBDTClassifier
from churn_cli import ROOT

NOW = "2030-01-01T00:00:00Z"
CATEGORICAL = ["plan", "acquisition_channel", "device", "lifecycle_stage"]


@parametrize_with_checks(
    [GBDTClassifier(n_estimators=10, min_child_samples=1, random_state=0)],
    expected_failed_checks=lambda estimator: {
        # As LightGBM: min_child_samples and the histogram bins count rows,
        # so a weight of 2 is not the same as a duplicated row.
        "check_sample_weight_equivalence_on_dense_data": "min_child_samples counts rows, not weight",
    },
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def churn_table():
    tables = (pq.read_table(ROOT / "data" / f"{t}.parquet") for t in ("learners", "courses", "events"))
    frame = churn.features(*tables, now=NOW).to_pandas()
    frame = frame[frame["churned"].notna()].sort_values(["as_of", "learner_id"])
    for c in CATEGORICAL:
        values = frame[c].astype(object).where(frame[c].notna(), None)
        frame[c] = pd.Categorical(values, categories=sorted(values.dropna().unique()))
    features = [c for c in frame.columns if c not in ("learner_id", "as_of", "churned")]
    cut = frame["as_of"].quantile(0.75)
    train, test = frame[frame["as_of"] <= cut], frame[frame["as_of"] > cut]
    return features, train, test


def test_as_accurate_as_lightgbm_with_the_same_parameters(churn_table):
    features, train, test = churn_table
    params = dict(n_estimators=150, learning_rate=0.05, num_leaves=31, min_child_samples=20)
    ours = GBDTClassifier(**params, random_state=1).fit(train[features], train["churned"])
    theirs = lgb.LGBMClassifier(**params, random_state=1, verbose=-1).fit(train[features], train["churned"])
    auc_ours = roc_auc_score(test["churned"], ours.predict_proba(test[features])[:, 1])
    auc_theirs = roc_auc_score(test["churned"], theirs.predict_proba(test[features])[:, 1])
    assert auc_ours > 0.8
    assert abs(auc_ours - auc_theirs) < 0.01, (auc_ours, auc_theirs)
    assert list(ours.feature_names_in_) == features
    assert ours.feature_importances_.sum() > 0


def coalition_value(tree, x, coalition):
    """E[tree(x) | x_S] by LightGBM's cover weights: the path-dependent value."""
    def node_value(node):
        if node < 0:
            return tree["leaf_value"][~node]
        feature = tree["split_feature"][node]
        left, right = tree["left_child"][node], tree["right_child"][node]
        if feature in coalition:
            split = tree["split"][node]["Numeric"]
            value = x[feature]
            if np.isnan(value):
                goes_left = split["default_left"]
            else:
                goes_left = value <= split["threshold"]
            return node_value(left if goes_left else right)
        def cover(child):
            return tree["leaf_count"][~child] if child < 0 else tree["internal_count"][child]
        total = cover(left) + cover(right)
        return (cover(left) * node_value(left) + cover(right) * node_value(right)) / total
    return node_value(0) if tree["split_feature"] else tree["leaf_value"][0]


def brute_force_shapley(model, x):
    p = len(x)
    phi = np.zeros(p)
    for tree in model["trees"]:
        for j in range(p):
            others = [k for k in range(p) if k != j]
            for size in range(p):
                weight = math.factorial(size) * math.factorial(p - size - 1) / math.factorial(p)
                for subset in itertools.combinations(others, size):
                    s = set(subset)
                    phi[j] += weight * (coalition_value(tree, x, s | {j}) - coalition_value(tree, x, s))
    return phi


def test_shap_values_are_the_exact_shapley_values():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, 5))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = ((np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2]) + rng.normal(size=600)) > 0)
    model = GBDTClassifier(n_estimators=8, num_leaves=6, min_child_samples=10, random_state=3).fit(X, y)
    trees = json.loads(model.booster_.to_json())
    values = model.shap_values(X[:12], with_base=True)
    margins = model.decision_function(X[:12])
    assert np.allclose(values.sum(axis=1), margins, atol=1e-9)
    for row in range(12):
        assert np.allclose(values[row, :-1], brute_force_shapley(trees, X[row]), atol=1e-9), row
    assert values[0, -1] == pytest.approx(model.expected_value_)


def test_same_seed_same_model_whatever_the_threads(churn_table):
    features, train, _ = churn_table
    def fit(threads):
        return GBDTClassifier(n_estimators=30, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                              random_state=5, n_jobs=threads).fit(train[features], train["churned"])
    one, two = fit(1), fit(2)
    assert one.booster_.to_bytes() == two.booster_.to_bytes()
    assert fit(2).booster_.to_bytes() != GBDTClassifier(
        n_estimators=30, subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=6, n_jobs=2
    ).fit(train[features], train["churned"]).booster_.to_bytes()


def test_pickle_early_stopping_and_categories(churn_table):
    features, train, test = churn_table
    model = GBDTClassifier(n_estimators=400, learning_rate=0.2, early_stopping_rounds=10, random_state=0)
    model.fit(train[features], train["churned"], eval_set=[(test[features], test["churned"])])
    assert model.best_iteration_ is not None and model.n_estimators_ < 400
    assert len(model.evals_result_["valid_0"]["logloss"]) < 400
    again = pickle.loads(pickle.dumps(model))
    assert np.array_equal(again.predict_proba(test[features]), model.predict_proba(test[features]))
    # pandas categories are read by value: a reordered vocabulary predicts the same.
    shuffled = test[features].copy()
    shuffled["plan"] = shuffled["plan"].cat.reorder_categories(list(reversed(shuffled["plan"].cat.categories)))
    assert np.array_equal(model.predict_proba(shuffled), model.predict_proba(test[features]))
    with pytest.raises(ValueError, match="eval_set"):
        GBDTClassifier(early_stopping_rounds=5).fit(train[features], train["churned"])
    with pytest.raises(churn.ChurnError, match="num_leaves"):
        GBDTClassifier(num_leaves=1).fit(train[features], train["churned"])
