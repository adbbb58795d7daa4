"""Side by side: `churn.spark.features` in pyspark local[2] against the CLI's
`churn features` on the same data (by default the 100k-learner simulation).

    .venv/bin/python benches/spark_vs_cli.py --data DIR [--learners-per-group 5000]

Both read the Parquet tables and write the training table as Parquet; the
rows are checked to be the same count. Spark's time is the job's (the session
is started, and the JVM warm, before the clock starts).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

import churn.spark

ROOT = Path(__file__).resolve().parents[1]
NOW = "2030-01-01T00:00:00Z"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--learners-per-group", type=int, default=5000)
    parser.add_argument("--churn-bin", default=os.environ.get(
        "CHURN_BIN", str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "churn")))
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]").appName("churn-bench")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "4g")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(10).count()  # the JVM and a Python worker are up before timing

    with tempfile.TemporaryDirectory() as tmp:
        cli_out = Path(tmp) / "cli.parquet"
        start = time.perf_counter()
        subprocess.run([args.churn_bin, "--quiet", "features", "--data", str(args.data),
                        "--out", str(cli_out), "--now", NOW], check=True, stdout=subprocess.DEVNULL)
        t_cli = time.perf_counter() - start
        cli_rows = pq.read_metadata(cli_out).num_rows

        spark_out = Path(tmp) / "spark"
        start = time.perf_counter()
        read = lambda t: spark.read.parquet(str(args.data / f"{t}.parquet"))  # noqa: E731
        table = churn.spark.features(read("events"), read("learners"), read("courses"), now=NOW,
                                     learners_per_group=args.learners_per_group)
        table.write.parquet(str(spark_out))
        t_spark = time.perf_counter() - start
        spark_rows = pq.ParquetDataset(str(spark_out)).read(columns=["learner_id"]).num_rows
    spark.stop()
    assert spark_rows == cli_rows, (spark_rows, cli_rows)
    print(f"features of {args.data}: {cli_rows} rows")
    print(f"  churn CLI                                  {t_cli:7.2f} s")
    print(f"  churn.spark.features, local[2], {args.learners_per_group} learners/group  {t_spark:7.2f} s"
          f"  ({t_spark / t_cli:.1f}x the CLI's time)")


if __name__ == "__main__":
    main()
