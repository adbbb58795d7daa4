"""`churn.features` and `churn.validate` against the CLI on the same data.

The package runs the same Rust code as `churn features`, so its table must be
the CLI's row for row and value for value (NaN where the CLI has NaN), from
pyarrow, polars and pandas inputs alike; rejected rows are accounted for as
`churn validate` accounts for them.
"""

import json
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import churn
from churn_cli import ROOT, churn as cli

DATA = ROOT / "data"
NOW = "2030-01-01T00:00:00Z"


def tables(reader):
    return [reader(DATA / f"{t}.parquet") for t in ("learners", "courses", "events")]


def assert_same_table(ours: pa.Table, theirs: pa.Table) -> None:
    assert ours.column_names == theirs.column_names
    assert ours.num_rows == theirs.num_rows > 0
    for name in ours.column_names:
        a, b = ours[name], theirs[name]
        if pa.types.is_floating(a.type):
            x, y = a.to_numpy(), b.to_numpy()
            assert np.array_equal(x, y, equal_nan=True), name
        else:
            assert a.to_pylist() == b.cast(a.type).to_pylist(), name


@pytest.fixture(scope="module")
def cli_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "table.parquet"
    cli("features", "--data", "data", "--out", str(out), "--now", NOW)
    return pq.read_table(out)


def pandas_categories(path):
    """pandas with its text columns as `category` (Arrow dictionaries)."""
    frame = pd.read_parquet(path)
    for column in frame.columns:
        if frame[column].dtype == object or str(frame[column].dtype).startswith("str"):
            frame[column] = frame[column].astype("category")
    return frame


@pytest.mark.parametrize(
    "reader",
    [pq.read_table, pl.read_parquet, pd.read_parquet, pandas_categories],
    ids=["pyarrow", "polars", "pandas", "pandas-category"],
)
def test_features_equal_the_cli_table(cli_table, reader):
    table = churn.features(*tables(reader), now=NOW, assignments=None)
    assert_same_table(table, cli_table)


def test_one_as_of_time_and_horizon_equal_the_cli(tmp_path):
    out = tmp_path / "t.parquet"
    cli("features", "--data", "data", "--out", str(out), "--now", NOW,
        "--from", "2026-05-01", "--to", "2026-05-01", "--horizon", "21d")
    ours = churn.features(*tables(pq.read_table), now=NOW, as_of="2026-05-01", horizon="21d")
    assert_same_table(ours, pq.read_table(out))
    assert pc.unique(ours["as_of"]).to_pylist() == [
        pd.Timestamp("2026-05-01", tz="UTC").to_pydatetime()
    ]


def test_rejected_rows_are_counted_named_and_reconcile(tmp_path):
    learners, courses, events = tables(pd.read_parquet)
    events = events.copy()
    events.loc[3, "event_type"] = "not a type!"
    events.loc[7, "ts"] = pd.Timestamp("2031-01-01", tz="UTC")
    report = churn.validate(learners, courses, events, now=NOW)
    ev = next(t for t in report["tables"] if t["table"] == "events")
    assert ev["read"] == len(events) == ev["accepted"] + ev["rejected"]
    assert [(r["row"], r["field"]) for r in ev["rejects"]] == [(4, "event_type"), (8, "ts")]
    # The CLI rejects the same rows of the same data written to disk.
    data = tmp_path / "data"
    data.mkdir()
    for name, frame in (("learners", learners), ("courses", courses), ("events", events)):
        frame.to_parquet(data / f"{name}.parquet")
    out = tmp_path / "validation"
    cli("validate", "--data", str(data), "--out", str(out), "--now", NOW)
    cli_report = json.loads((out / "validation.json").read_text())
    cli_events = next(t for t in cli_report["tables"] if t["table"] == "events")
    assert cli_events["rejected"] == ev["rejected"] == 2
    with pytest.warns(churn.RejectedRowsWarning, match=r"events: 2 of .* row 4, event_type"):
        churn.features(learners, courses, events, now=NOW)
    with pytest.raises(churn.ChurnError, match="2 rows rejected"):
        churn.features(learners, courses, events, now=NOW, strict=True)


def test_bad_input_is_a_clear_error():
    learners, courses, events = tables(pq.read_table)
    with pytest.raises(churn.ChurnError, match=r"events.*learner_id"):
        churn.features(learners, courses, events.drop_columns(["learner_id"]), now=NOW)
    with pytest.raises(TypeError, match="events: expected a pyarrow Table"):
        churn.features(learners, courses, [1, 2, 3], now=NOW)
    with pytest.raises(churn.ChurnError, match=r'horizon="thirty days"'):
        churn.features(learners, courses, events, now=NOW, horizon="thirty days")
    with pytest.raises(churn.ChurnError, match="contract"):
        churn.features(learners, courses, events, now=NOW, contract="label = 'sometimes'")


def test_an_empty_events_table_is_said_not_a_crash():
    learners, courses, events = tables(pq.read_table)
    with pytest.raises(churn.ChurnError, match="no events"):
        churn.features(learners, courses, events.slice(0, 0), now=NOW)
