"""`churn.spark` in pyspark local[2] against the CLI, row for row and value
for value: features through cogroup(...).applyInArrow, scores through
mapInArrow. Skipped, with the reason printed, when Java or pyspark is missing.
"""

import os
import shutil
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import churn
import churn.spark
from churn_cli import ROOT, churn as cli

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed")
if shutil.which("java") is None:
    pytest.skip("no java on PATH: Spark cannot start", allow_module_level=True)

NOW = "2030-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    # The workers run this interpreter, where churn is installed.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]").appName("churn-test")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()


def sorted_table(table: pa.Table) -> pa.Table:
    # Spark hands text back as string views, which pyarrow does not sort.
    views = (pa.string_view(), pa.binary_view())
    table = table.cast(pa.schema([
        f.with_type(pa.string()) if f.type in views else f for f in table.schema
    ]))
    return table.sort_by([("learner_id", "ascending"), ("as_of", "ascending")])


def test_spark_features_and_scores_equal_the_cli(spark, tmp_path):
    data = ROOT / "data"
    read = lambda t: spark.read.parquet(str(data / f"{t}.parquet"))  # noqa: E731
    # Small groups, so that the test has many (a learner's rows must not depend on its group).
    ours = churn.spark.features(read("events"), read("learners"), read("courses"), now=NOW,
                                learners_per_group=300)
    ours = sorted_table(ours.toArrow())

    out = tmp_path / "table.parquet"
    cli("features", "--data", "data", "--out", str(out), "--now", NOW)
    theirs = sorted_table(pq.read_table(out))
    assert ours.column_names == theirs.column_names
    assert ours.num_rows == theirs.num_rows > 20000
    for name in ours.column_names:
        a, b = ours[name], theirs[name]
        if pa.types.is_floating(b.type):
            assert np.array_equal(a.to_numpy(), b.to_numpy(), equal_nan=True), name
        elif pa.types.is_timestamp(b.type):
            assert a.cast(b.type).to_pylist() == b.to_pylist(), name
        else:
            assert a.to_pylist() == b.cast(a.type).to_pylist(), name

    model = churn.load_model("churn-gbdt", models_dir=ROOT / "models")
    scored = churn.spark.score(spark.createDataFrame(theirs.to_pandas()), "churn-gbdt",
                               models_dir=str(ROOT / "models"))
    scored = sorted_table(scored.toArrow())
    expected = model.predict(theirs)
    assert np.abs(scored["churn_probability"].to_numpy() - expected).max() < 1e-12
    top = model.top_factors(theirs.slice(0, 5), 3)
    assert [[f["feature"] for f in row] for row in scored["top_factors"].to_pylist()[:5]] == [
        [name for name, _ in row] for row in top
    ]
