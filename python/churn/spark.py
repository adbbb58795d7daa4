"""churn's features and scoring in Spark's Python workers.

The same Rust code as the CLI runs inside Spark, so a cluster computes the
numbers the CLI and the server compute:

- :func:`features` groups events and learners by learner
  (``groupBy(...).cogroup(...).applyInArrow``, on a hash bucket of the
  learner id so that one call computes thousands of learners) and computes
  each learner's rows of the training table. What depends on all the data
  (the as-of times, the end of the data, which custom event types get
  columns) is fixed once on the driver, so every group is computed by the
  same plan and a learner's rows do not depend on its group.
- :func:`score` scores a feature table with a model (``mapInArrow``); each
  worker process loads the model once.

Courses (and deadlines) are small and travel to the workers with the task.
Requires pyspark >= 4.0 (``pip install churn[spark]``).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Optional

import pyarrow as pa

import churn
from churn import _churn

_MODELS: dict = {}
# The column that groups learners (a hash bucket of the learner id).
_GROUP = "_churn_group"


def _ms(value: Any) -> int:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return int(value.timestamp() * 1000)
    return int(pa.scalar(value, pa.timestamp("ms", tz="UTC")).value)


def _text(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _arrow(df: Any) -> pa.Table:
    """A small Spark frame collected to the driver as a pyarrow table."""
    return df.toArrow()


def features(
    events_df: Any,
    learners_df: Any,
    courses_df: Any,
    *,
    as_of: Optional[Any] = None,
    horizon: str = "30d",
    every: str = "14d",
    from_time: Optional[Any] = None,
    to_time: Optional[Any] = None,
    data_end: Optional[Any] = None,
    label: Optional[str] = None,
    deadlines_df: Any = None,
    contract: Optional[str] = None,
    now: Optional[Any] = None,
    custom_types: int = 16,
    learners_per_group: int = 5000,
):
    """The training table of ``churn features`` as a Spark DataFrame.

    Arguments as :func:`churn.features`; the tables are Spark DataFrames with
    the data contract's columns. Rows come in no particular order. A row
    that breaks the data contract fails the job with its reason (``strict``):
    a cluster has no rejects directory, so run :func:`churn.validate` or
    ``churn validate`` on the data first. Learners are grouped by a hash of
    their id, about ``learners_per_group`` to a group (one call of the Rust
    code per group; a group's events must fit in a worker's memory).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    if as_of is not None:
        if from_time is not None or to_time is not None:
            raise ValueError("as_of is one as-of time: leave from_time and to_time out")
        from_time = to_time = as_of
    bounds = events_df.agg(F.min("ts").alias("first"), F.max("ts").alias("last")).collect()[0]
    if bounds["first"] is None:
        raise churn.ChurnError("events: no rows, so there is nothing to take snapshots of")
    times, end = _churn.snapshot_plan(
        _ms(bounds["first"]), _ms(bounds["last"]),
        from_time=churn._time(from_time, "from_time"), to_time=churn._time(to_time, "to_time"),
        every=every, horizon=horizon, data_end=churn._time(data_end, "data_end"),
    )
    known = _churn.known_event_types()
    weight = F.col("count") if "count" in events_df.columns else F.lit(1)
    ranked = (
        events_df.where(~F.col("event_type").isin(known))
        .groupBy("event_type").agg(F.sum(weight).alias("n"))
        .orderBy(F.desc("n"), F.asc("event_type")).limit(custom_types).collect()
    )
    plan = dict(
        from_time=_text(times[0]), to_time=_text(times[-1]), every=every, horizon=horizon,
        data_end=_text(end), label=label, contract=churn._contract(contract),
        now=churn._time(now, "now") or _text(_ms(_dt.datetime.now(_dt.timezone.utc))),
        custom_event_types=[r["event_type"] for r in ranked],
    )
    courses = _arrow(courses_df)
    deadlines = None if deadlines_df is None else _arrow(deadlines_df)

    def table(events: pa.Table, learners: pa.Table) -> pa.Table:
        return churn.features(learners, courses, events, deadlines=deadlines, strict=True, **plan)

    # The output schema: the table of the first learner (every group has
    # these columns), in the types Spark hands back (string, microseconds).
    first = learners_df.limit(1).toArrow()
    first_events = events_df.where(F.col("learner_id") == first["learner_id"][0].as_py()).toArrow()
    schema = from_arrow_schema(table(first_events, first).schema)
    arrow_schema = to_arrow_schema(schema, timezone="UTC")

    def learner_rows(events: pa.Table, learners: pa.Table) -> pa.Table:
        events, learners = events.drop_columns([_GROUP]), learners.drop_columns([_GROUP])
        return table(events, learners).cast(arrow_schema)

    groups = max(1, -(-learners_df.count() // max(1, learners_per_group)))
    group = F.pmod(F.hash("learner_id"), F.lit(groups))
    return (
        events_df.withColumn(_GROUP, group).groupBy(_GROUP)
        .cogroup(learners_df.withColumn(_GROUP, group).groupBy(_GROUP))
        .applyInArrow(learner_rows, schema)
    )


def score(df: Any, model: str, *, models_dir: str = "models", top_k: int = 3):
    """Scores a feature table (Spark DataFrame) with a model directory or
    name: ``learner_id``, ``as_of``, ``churn_probability`` and the ``top_k``
    factors (feature, contribution), as the server and ``churn predict``."""
    from pyspark.sql.types import (
        ArrayType, DoubleType, StringType, StructField, StructType, TimestampType,
    )

    churn.load_model(model, models_dir=models_dir)  # fails fast on the driver
    schema = StructType([
        StructField("learner_id", StringType()),
        StructField("as_of", TimestampType()),
        StructField("churn_probability", DoubleType()),
        StructField("top_factors", ArrayType(StructType([
            StructField("feature", StringType()), StructField("contribution", DoubleType()),
        ]))),
    ])
    out_schema = pa.schema([
        ("learner_id", pa.string()), ("as_of", pa.timestamp("us", tz="UTC")),
        ("churn_probability", pa.float64()),
        ("top_factors", pa.list_(pa.struct([("feature", pa.string()), ("contribution", pa.float64())]))),
    ])

    def batches(parts):
        key = (model, models_dir)
        if key not in _MODELS:
            _MODELS[key] = churn.load_model(model, models_dir=models_dir)
        loaded = _MODELS[key]
        for batch in parts:
            table = pa.Table.from_batches([batch])
            factors = [[{"feature": f, "contribution": c} for f, c in row]
                       for row in loaded.top_factors(table, top_k)]
            yield pa.RecordBatch.from_arrays(
                [table["learner_id"].combine_chunks().cast(pa.string()),
                 table["as_of"].combine_chunks().cast(pa.timestamp("us", tz="UTC")),
                 pa.array(loaded.predict(table)), pa.array(factors, type=out_schema.field("top_factors").type)],
                schema=out_schema,
            )

    return df.mapInArrow(batches, schema)
