"""`churn features` against three independent implementations.

benches/features_pandas.py, benches/features_polars.py (lazy polars) and
benches/features_duckdb.py (DuckDB SQL) each compute every feature and label
from the written definitions; `churn features`
must give the same rows, the same labels, the same categories and numbers equal
to 1e-9 (NaN = NaN) as each.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_cli import ROOT, churn

sys.path.insert(0, str(ROOT / "benches"))

import features_duckdb  # noqa: E402
import features_pandas  # noqa: E402
import features_polars  # noqa: E402




def ours(data: Path, out: Path, every_days: int, horizon_days: int) -> pd.DataFrame:
    churn(
        "features", "--data", str(data), "--out", str(out),
        "--every", f"{every_days}d", "--horizon", f"{horizon_days}d", "--now", "2030-01-01T00:00:00Z",
    )
    table = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)
    table["as_of"] = features_pandas.to_ms(table["as_of"])
    return table


def assert_same_table(rust: pd.DataFrame, reference: pd.DataFrame):
    assert list(rust.columns) == list(reference.columns)
    rust = rust.sort_values(["learner_id", "as_of"]).reset_index(drop=True)
    reference = reference.sort_values(["learner_id", "as_of"]).reset_index(drop=True)
    assert len(rust) == len(reference), "the same (learner, as-of) examples"
    assert (rust["learner_id"].astype(str) == reference["learner_id"].astype(str)).all()
    assert (rust["as_of"].to_numpy() == reference["as_of"].to_numpy()).all()
    for column in rust.columns[2:]:
        a, b = rust[column], reference[column]
        if column in ("plan", "acquisition_channel", "device", "lifecycle_stage"):
            missing = "<missing>"  # pandas compares None != None as unequal
            mismatched = (a.astype(object).where(a.notna(), missing) != b.astype(object).where(b.notna(), missing)).sum()
        else:
            a, b = a.astype(float).to_numpy(), b.astype(float).to_numpy()
            same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= 1e-9)
            mismatched = (~same).sum()
        assert mismatched == 0, f"{column}: {mismatched} rows differ"


def test_sample_table_equals_pandas(tmp_path):
    data = ROOT / "data"
    rust = ours(data, tmp_path / "table.parquet", 14, 30)
    reference = features_pandas.compute_table(data, every_days=14, horizon_days=30)
    assert rust["churned"].notna().sum() > 1000 and rust["churned"].isna().sum() > 0
    assert_same_table(rust, reference)
    assert_same_table(rust, features_polars.compute_table(data, every_days=14, horizon_days=30).to_pandas())
    assert_same_table(rust, features_duckdb.compute_table(data, every_days=14, horizon_days=30))


@pytest.mark.parametrize("every_days,horizon_days", [(7, 21)])
def test_csv_input_and_other_windows_equal_pandas(tmp_path, every_days, horizon_days):
    data = tmp_path / "sim"
    churn("simulate", "--learners", "600", "--days", "120", "--seed", "3", "--format", "csv", "--out", str(data))
    rust = ours(data, tmp_path / "table.csv", every_days, horizon_days)
    reference = features_pandas.compute_table(data, every_days=every_days, horizon_days=horizon_days)
    assert_same_table(rust, reference)
    lazy = features_polars.compute_table(data, every_days=every_days, horizon_days=horizon_days)
    assert_same_table(rust, lazy.to_pandas())
    sql = features_duckdb.compute_table(data, every_days=every_days, horizon_days=horizon_days)
    assert_same_table(rust, sql)
