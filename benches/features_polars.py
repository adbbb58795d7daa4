"""The training table of DESIGN.md "Features and labels", written in polars (lazy).

A second independent implementation of every feature and label that `churn
features` computes, the way a data team using polars would write it: for each
as-of time, one lazy query filters the events and aggregates them per learner
with conditional expressions in a single `group_by`, plus two small queries
(course completion, check-in streaks); every snapshot's query is collected
together so polars runs them on all cores. It shares no computation with the
Rust crates nor with the other peers, only the written definitions (DESIGN.md
and the descriptions in crates/churn-features/src/registry.rs) and, with the
other peers, the column names, the as-of grid and the command line
(benches/feature_peers.py).
It is a peer of the feature benchmark (benches/features_vs_pandas.py) and a
reference of the agreement test (tests/python/test_features.py).

    python benches/features_polars.py --data data/ --out table.parquet \
        [--from 2026-02-09] [--to 2026-06-29] [--every-days 14] [--horizon-days 30]
"""

from pathlib import Path

import polars as pl

import feature_peers
from feature_peers import COUNTS, DAY_MS, FEATURES

ACTIVITY = ["login", "video_watch", "lesson_complete", "quiz_attempt", "forum_post", "checkin", "live_class"]


def read_table(data: Path, name: str) -> pl.LazyFrame:
    parquet, csv = data / f"{name}.parquet", data / f"{name}.csv"
    if parquet.exists():
        return pl.scan_parquet(parquet)
    return pl.scan_csv(csv, infer_schema=False)


def ms(column: str, schema: pl.Schema) -> pl.Expr:
    """A time column as ms since the epoch, from Parquet timestamps or RFC 3339 text."""
    if schema[column] == pl.String:
        return pl.col(column).str.to_datetime(time_zone="UTC", time_unit="ms").dt.epoch("ms")
    return pl.col(column).dt.epoch("ms")


def load(data: Path):
    learners, courses, events = (read_table(data, n) for n in ("learners", "courses", "events"))
    learners = learners.select(
        pl.col("learner_id").cast(pl.String),
        ms("signup_at", learners.collect_schema()).alias("signup_ms"),
        pl.col("plan").cast(pl.String),
        pl.col("acquisition_channel").cast(pl.String),
        pl.col("device").cast(pl.String),
    )
    lessons = courses.select(pl.col("course_id").cast(pl.String), pl.col("lessons").cast(pl.Float64))
    schema = events.collect_schema()
    events = events.select(
        pl.col("learner_id").cast(pl.String),
        ms("ts", schema).alias("ts"),
        pl.col("event_type").cast(pl.String),
        pl.col("course_id").cast(pl.String),
        *(pl.col(m).cast(pl.Float64) for m in ("duration_s", "score", "amount", "latency_ms", "stalls")),
    )
    # Ties in time keep the file's order: "the last 10 quizzes" depends on it.
    events = events.sort(["learner_id", "ts"], maintain_order=True)
    return learners.collect(), lessons.collect(), events.collect()


def snapshot(learners, lessons, events, t: int, horizon_ms: int, data_end: int) -> pl.LazyFrame:
    kind = pl.col("event_type")
    age = pl.lit(t) - pl.col("ts")
    in7, in14, in30 = age < 7 * DAY_MS, age < 14 * DAY_MS, age < 30 * DAY_MS
    day = age // DAY_MS
    activity = kind.is_in(ACTIVITY)
    login, quiz, live, payment = (kind == k for k in ("login", "quiz_attempt", "live_class", "payment"))
    watch = (kind == "video_watch") & pl.col("duration_s").is_not_null()
    scored = quiz & pl.col("score").is_not_null()
    past = events.lazy().filter(pl.col("ts") <= t)

    def count(condition):
        return condition.sum().cast(pl.Float64)

    def days_since(condition):
        return (t - pl.col("ts").filter(condition).max()) / DAY_MS

    per_learner = past.group_by("learner_id", maintain_order=True).agg(
        pl.col("ts").filter(activity).max().alias("last_activity"),
        pl.col("ts").filter(kind == "subscription_cancel").max().alias("last_cancel"),
        days_since(login).alias("days_since_last_login"),
        count(login & in7).alias("logins_7d"),
        count(login & in30).alias("logins_30d"),
        day.filter(activity & in7).n_unique().cast(pl.Float64).alias("active_days_7d"),
        day.filter(activity & in30).n_unique().cast(pl.Float64).alias("active_days_30d"),
        (pl.col("duration_s").filter(watch & in7).sum() / 60.0).alias("watch_minutes_7d"),
        (pl.col("duration_s").filter(watch & in30).sum() / 60.0).alias("watch_minutes_30d"),
        (
            (pl.col("duration_s").filter(watch & in7).sum() - pl.col("duration_s").filter(watch & ~in7 & in14).sum())
            / 60.0
        ).alias("watch_minutes_trend_7d"),
        pl.col("course_id")
        .filter((kind == "course_enroll") & pl.col("course_id").is_not_null())
        .n_unique()
        .cast(pl.Float64)
        .alias("courses_enrolled"),
        count(kind == "lesson_complete").alias("lessons_completed"),
        count((kind == "lesson_complete") & in30).alias("lessons_completed_30d"),
        count(quiz & in30).alias("quiz_attempts_30d"),
        pl.col("score").filter(scored & in30).mean().alias("quiz_mean_score_30d"),
        pl.col("score").filter(scored).tail(10).mean().alias("quiz_mean_score_last10"),
        count((kind == "forum_post") & in30).alias("forum_posts_30d"),
        count((kind == "checkin") & in30).alias("checkins_30d"),
        days_since(kind.is_in(["forum_post", "checkin"])).alias("days_since_last_community"),
        count(live & in30).alias("live_classes_30d"),
        pl.col("latency_ms").filter(live & in30).mean().alias("live_mean_latency_ms_30d"),
        pl.col("stalls").filter(live & in30).mean().alias("live_stalls_per_class_30d"),
        count((kind == "refund_page_view") & in7).alias("refund_views_7d"),
        count((kind == "refund_page_view") & in30).alias("refund_views_30d"),
        count((kind == "support_ticket") & in7).alias("support_tickets_7d"),
        count((kind == "support_ticket") & in30).alias("support_tickets_30d"),
        count(payment).alias("payments_total"),
        pl.col("amount").filter(payment).sum().alias("amount_paid_total"),
        days_since(payment).alias("days_since_last_payment"),
        count(kind == "coupon_redeem").alias("coupon_redemptions_total"),
        count(kind == "subscription_cancel").alias("cancellations_total"),
    )

    # Completion: lessons done per enrolled course (at most its lessons) over
    # the lessons of the enrolled courses the catalogue knows.
    with_course = pl.col("course_id").is_not_null()
    enrolled = past.filter((kind == "course_enroll") & with_course).select("learner_id", "course_id").unique()
    done = past.filter((kind == "lesson_complete") & with_course).group_by("learner_id", "course_id").len("done")
    completion = (
        enrolled.join(done, on=["learner_id", "course_id"], how="left")
        .join(lessons.lazy(), on="course_id", how="left")
        .with_columns(
            pl.when(pl.col("lessons").is_null())
            .then(None)
            .otherwise(pl.min_horizontal(pl.col("done").fill_null(0).cast(pl.Float64), pl.col("lessons")))
            .alias("done")
        )
        .group_by("learner_id")
        .agg(pl.col("done").sum(), pl.col("lessons").sum())
        .select(
            "learner_id",
            pl.when(pl.col("lessons") > 0).then(pl.col("done") / pl.col("lessons")).alias("completion_rate"),
        )
    )

    # Check-in streak: consecutive days with a check-in, ending today or yesterday.
    streaks = (
        past.filter(kind == "checkin")
        .select("learner_id", day.alias("day"))
        .unique()
        .sort(["learner_id", "day"])
        .with_columns(
            pl.int_range(pl.len()).over("learner_id").alias("rank"),
            pl.col("day").min().over("learner_id").alias("first"),
        )
        .group_by("learner_id")
        .agg(
            ((pl.col("day") - pl.col("rank") == pl.col("first")) & (pl.col("first") <= 1))
            .sum()
            .cast(pl.Float64)
            .alias("checkin_streak_days")
        )
    )

    if t + horizon_ms > data_end:
        label = pl.lit(None, dtype=pl.Float64)
        future = None
    else:
        future = (
            events.lazy()
            .filter((pl.col("ts") > t) & (pl.col("ts") <= t + horizon_ms))
            .group_by("learner_id")
            .agg(activity.any().alias("active_after"), (kind == "subscription_cancel").any().alias("cancelled_after"))
        )
        label = (
            (~pl.col("active_after").fill_null(False)) | pl.col("cancelled_after").fill_null(False)
        ).cast(pl.Float64)

    table = (
        learners.lazy()
        .filter(pl.col("signup_ms") <= t)
        .join(per_learner, on="learner_id", how="left")
        .filter(
            (pl.col("last_activity") > t - horizon_ms)
            & ~(pl.col("last_activity") <= pl.col("last_cancel")).fill_null(False)
        )
    )
    if future is not None:
        table = table.join(future, on="learner_id", how="left")
    tenure = pl.lit(t) - pl.col("signup_ms")
    table = (
        table.join(completion, on="learner_id", how="left")
        .join(streaks, on="learner_id", how="left")
        .with_columns(
            ((t - pl.col("last_activity")) / DAY_MS).alias("days_since_last_activity"),
            (tenure / DAY_MS).alias("tenure_days"),
            *(pl.col(c).fill_null(0.0) for c in COUNTS),
        )
        .select(
            "learner_id",
            pl.lit(t, dtype=pl.Int64).alias("as_of"),
            label.alias("churned"),
            *(pl.col(f).cast(pl.Float64) for f in FEATURES),
            "plan",
            "acquisition_channel",
            "device",
            pl.when(tenure < 14 * DAY_MS)
            .then(pl.lit("new"))
            .when(pl.col("active_days_7d") == 0)
            .then(pl.lit("lapsing"))
            .otherwise(pl.lit("active"))
            .alias("lifecycle_stage"),
        )
    )
    return table


def parse_day(text: str) -> int:
    return int(pl.Series([text]).str.to_datetime(time_zone="UTC", time_unit="ms").dt.epoch("ms")[0])


def compute_table(data: Path, start=None, end=None, every_days=14, horizon_days=30) -> pl.DataFrame:
    learners, lessons, events = load(data)
    every_ms, horizon_ms = every_days * DAY_MS, horizon_days * DAY_MS
    data_end = int(events["ts"].max())
    default_from, to = feature_peers.default_times(int(events["ts"].min()), data_end, every_ms, horizon_ms)
    t0 = default_from if start is None else parse_day(start)
    t1 = to if end is None else parse_day(end)
    snapshots = [snapshot(learners, lessons, events, t, horizon_ms, data_end) for t in range(t0, t1 + 1, every_ms)]
    table = pl.concat(pl.collect_all(snapshots))
    return table.sort(["learner_id", "as_of"], maintain_order=True)


def write(table: pl.DataFrame, out: Path):
    table.with_columns(pl.col("as_of").cast(pl.Datetime("ms", "UTC"))).write_parquet(out)


if __name__ == "__main__":
    feature_peers.main(__doc__.splitlines()[0], compute_table, write)
