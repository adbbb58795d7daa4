"""Explanations name the true cause (simulator ground truth).

A simulated platform knows, for every learner at the experiment, the driver
that pushes their churn risk the most. After training on the history before
it, the top-3 factors of `churn predict` at the assignment time must name the
dominant driver for most learners whose dominant push is a real one (≥ 1
log-odds), for each of the four drivers the playbook acts on. The mapping
from features to drivers is the playbook's (benches/driver_agreement.py).
"""

import sys
from pathlib import Path

import pandas as pd

from churn_cli import ROOT, churn

sys.path.insert(0, str(ROOT / "benches"))

import driver_agreement  # noqa: E402




def test_top_factors_name_the_dominant_driver(tmp_path):
    sim, models, work = tmp_path / "sim", tmp_path / "models", tmp_path / "work"
    churn("simulate", "--learners", "25000", "--days", "200", "--seed", "5", "--out", str(sim))
    assigned_at = pd.read_parquet(sim / "assignments.parquet")["assigned_at"].min()
    as_of = assigned_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    train_to = (assigned_at - pd.Timedelta(days=30)).strftime("%Y-%m-%d")
    churn(
        "train", "--data", str(sim), "--kind", "gbdt", "--every", "7d", "--to", train_to,
        "--out", str(models), "--work", str(work),
    )
    predictions = tmp_path / "predictions.csv"
    churn(
        "predict", "--model", "churn", "--models", str(models), "--data", str(sim),
        "--as-of", as_of, "--out", str(predictions), "--work", str(work),
    )
    result = driver_agreement.agreement(
        predictions, sim / "truth_learners.csv", ROOT / "playbook.toml", min_push=1.0
    )
    for driver in ["inactivity", "low_completion", "refund_views", "live_experience"]:
        assert result[driver]["learners"] >= 50, result
        assert result[driver]["top3_agreement"] > 0.5, (driver, result[driver])
