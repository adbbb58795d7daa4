"""The training table of DESIGN.md "Features and labels", written in DuckDB SQL.

A third independent implementation of every feature and label that `churn
features` computes, the way a data team using DuckDB would write it: the
tables are loaded once, then for each as-of time one SQL query aggregates the
events up to it per learner with `FILTER` clauses, and joins the course
completion, the last ten quiz scores, the check-in streak and the label.
It shares no computation with the Rust crates nor with the pandas and polars
peers, only the written definitions (DESIGN.md and the descriptions in
crates/churn-features/src/registry.rs) and, with the other peers, the column
names, the as-of grid and the command line (benches/feature_peers.py). It is a peer of the feature benchmark
(benches/features_vs_pandas.py) and a reference of the agreement test
(tests/python/test_features.py).

    python benches/features_duckdb.py --data data/ --out table.parquet \
        [--from 2026-02-09] [--to 2026-06-29] [--every-days 14] [--horizon-days 30]
"""

from pathlib import Path

import duckdb
import pandas as pd

import feature_peers
from feature_peers import COUNTS, DAY_MS, FEATURES

ACTIVITY = "('login', 'video_watch', 'lesson_complete', 'quiz_attempt', 'forum_post', 'checkin', 'live_class')"


def source(data: Path, name: str) -> str:
    parquet, csv = data / f"{name}.parquet", data / f"{name}.csv"
    if parquet.exists():
        return f"read_parquet('{parquet}')"
    return f"read_csv('{csv}', all_varchar = true)"


def load(data: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    text = not (data / "events.parquet").exists()

    def ms(column):
        return f"epoch_ms(CAST({column} AS TIMESTAMPTZ))" if text else f"epoch_ms({column})"

    def number(column):
        return f"CAST(NULLIF(CAST({column} AS VARCHAR), '') AS DOUBLE)"

    con.execute(f"""
        CREATE TABLE learners AS
        SELECT CAST(learner_id AS VARCHAR) AS learner_id, {ms('signup_at')} AS signup_ms,
               CAST(plan AS VARCHAR) AS plan, CAST(acquisition_channel AS VARCHAR) AS acquisition_channel,
               NULLIF(CAST(device AS VARCHAR), '') AS device
        FROM {source(data, 'learners')}""")
    con.execute(f"""
        CREATE TABLE courses AS
        SELECT CAST(course_id AS VARCHAR) AS course_id, {number('lessons')} AS lessons
        FROM {source(data, 'courses')}""")
    # The file's order, kept: ties in time keep it ("the last 10 quizzes").
    con.execute(f"CREATE TABLE raw_events AS SELECT * FROM {source(data, 'events')}")
    con.execute(f"""
        CREATE TABLE events AS
        SELECT CAST(learner_id AS VARCHAR) AS learner_id, {ms('ts')} AS ts, CAST(event_type AS VARCHAR) AS event_type,
               NULLIF(CAST(course_id AS VARCHAR), '') AS course_id,
               {number('duration_s')} AS duration_s, {number('score')} AS score, {number('amount')} AS amount,
               {number('latency_ms')} AS latency_ms, {number('stalls')} AS stalls, rowid AS seq
        FROM raw_events""")
    return con


SNAPSHOT = f"""
WITH past AS (
    SELECT *, $t - ts AS age, ($t - ts) // {DAY_MS} AS day FROM events WHERE ts <= $t
),
agg AS (
    SELECT learner_id,
        max(ts) FILTER (WHERE event_type IN {ACTIVITY}) AS last_activity,
        max(ts) FILTER (WHERE event_type = 'subscription_cancel') AS last_cancel,
        ($t - max(ts) FILTER (WHERE event_type = 'login')) / {DAY_MS} AS days_since_last_login,
        count(*) FILTER (WHERE event_type = 'login' AND age < {7 * DAY_MS}) AS logins_7d,
        count(*) FILTER (WHERE event_type = 'login' AND age < {30 * DAY_MS}) AS logins_30d,
        count(DISTINCT day) FILTER (WHERE event_type IN {ACTIVITY} AND age < {7 * DAY_MS}) AS active_days_7d,
        count(DISTINCT day) FILTER (WHERE event_type IN {ACTIVITY} AND age < {30 * DAY_MS}) AS active_days_30d,
        coalesce(sum(duration_s) FILTER (WHERE event_type = 'video_watch' AND age < {7 * DAY_MS}), 0) / 60
            AS watch_minutes_7d,
        coalesce(sum(duration_s) FILTER (WHERE event_type = 'video_watch' AND age < {30 * DAY_MS}), 0) / 60
            AS watch_minutes_30d,
        (coalesce(sum(duration_s) FILTER (WHERE event_type = 'video_watch' AND age < {7 * DAY_MS}), 0)
         - coalesce(sum(duration_s) FILTER (WHERE event_type = 'video_watch' AND age >= {7 * DAY_MS}
                                            AND age < {14 * DAY_MS}), 0)) / 60 AS watch_minutes_trend_7d,
        count(DISTINCT course_id) FILTER (WHERE event_type = 'course_enroll') AS courses_enrolled,
        count(*) FILTER (WHERE event_type = 'lesson_complete') AS lessons_completed,
        count(*) FILTER (WHERE event_type = 'lesson_complete' AND age < {30 * DAY_MS}) AS lessons_completed_30d,
        count(*) FILTER (WHERE event_type = 'quiz_attempt' AND age < {30 * DAY_MS}) AS quiz_attempts_30d,
        avg(score) FILTER (WHERE event_type = 'quiz_attempt' AND age < {30 * DAY_MS}) AS quiz_mean_score_30d,
        count(*) FILTER (WHERE event_type = 'forum_post' AND age < {30 * DAY_MS}) AS forum_posts_30d,
        count(*) FILTER (WHERE event_type = 'checkin' AND age < {30 * DAY_MS}) AS checkins_30d,
        ($t - max(ts) FILTER (WHERE event_type IN ('forum_post', 'checkin'))) / {DAY_MS} AS days_since_last_community,
        count(*) FILTER (WHERE event_type = 'live_class' AND age < {30 * DAY_MS}) AS live_classes_30d,
        avg(latency_ms) FILTER (WHERE event_type = 'live_class' AND age < {30 * DAY_MS}) AS live_mean_latency_ms_30d,
        avg(stalls) FILTER (WHERE event_type = 'live_class' AND age < {30 * DAY_MS}) AS live_stalls_per_class_30d,
        count(*) FILTER (WHERE event_type = 'refund_page_view' AND age < {7 * DAY_MS}) AS refund_views_7d,
        count(*) FILTER (WHERE event_type = 'refund_page_view' AND age < {30 * DAY_MS}) AS refund_views_30d,
        count(*) FILTER (WHERE event_type = 'support_ticket' AND age < {7 * DAY_MS}) AS support_tickets_7d,
        count(*) FILTER (WHERE event_type = 'support_ticket' AND age < {30 * DAY_MS}) AS support_tickets_30d,
        count(*) FILTER (WHERE event_type = 'payment') AS payments_total,
        sum(amount) FILTER (WHERE event_type = 'payment') AS amount_paid_total,
        ($t - max(ts) FILTER (WHERE event_type = 'payment')) / {DAY_MS} AS days_since_last_payment,
        count(*) FILTER (WHERE event_type = 'coupon_redeem') AS coupon_redemptions_total,
        count(*) FILTER (WHERE event_type = 'subscription_cancel') AS cancellations_total
    FROM past GROUP BY learner_id
),
last10 AS (
    SELECT learner_id, avg(score) AS quiz_mean_score_last10 FROM (
        SELECT learner_id, score,
               row_number() OVER (PARTITION BY learner_id ORDER BY ts DESC, seq DESC) AS k
        FROM past WHERE event_type = 'quiz_attempt' AND score IS NOT NULL
    ) WHERE k <= 10 GROUP BY learner_id
),
enrolled AS (
    SELECT DISTINCT learner_id, course_id FROM past WHERE event_type = 'course_enroll' AND course_id IS NOT NULL
),
done AS (
    SELECT learner_id, course_id, count(*) AS done FROM past
    WHERE event_type = 'lesson_complete' AND course_id IS NOT NULL GROUP BY learner_id, course_id
),
completion AS (
    SELECT e.learner_id,
        CASE WHEN sum(c.lessons) > 0 THEN
            sum(CASE WHEN c.lessons IS NOT NULL THEN least(coalesce(d.done, 0), c.lessons) END) / sum(c.lessons)
        END AS completion_rate
    FROM enrolled e LEFT JOIN done d USING (learner_id, course_id) LEFT JOIN courses c USING (course_id)
    GROUP BY e.learner_id
),
checkin_days AS (
    SELECT DISTINCT learner_id, day FROM past WHERE event_type = 'checkin'
),
streak AS (
    SELECT learner_id, count(*) FILTER (WHERE day - position = first AND first <= 1) AS checkin_streak_days FROM (
        SELECT learner_id, day, row_number() OVER (PARTITION BY learner_id ORDER BY day) - 1 AS position,
               min(day) OVER (PARTITION BY learner_id) AS first
        FROM checkin_days
    ) GROUP BY learner_id
),
future AS (
    SELECT learner_id, bool_or(event_type IN {ACTIVITY}) AS active_after,
           bool_or(event_type = 'subscription_cancel') AS cancelled_after
    FROM events WHERE ts > $t AND ts <= $t + $horizon GROUP BY learner_id
)
SELECT l.learner_id, $t AS as_of,
    CASE WHEN $labelled THEN
        CASE WHEN NOT coalesce(f.active_after, false) OR coalesce(f.cancelled_after, false) THEN 1.0 ELSE 0.0 END
    END AS churned,
    a.days_since_last_login, ($t - a.last_activity) / {DAY_MS} AS days_since_last_activity,
    a.* EXCLUDE (learner_id, last_activity, last_cancel, days_since_last_login),
    c.completion_rate, t10.quiz_mean_score_last10, s.checkin_streak_days,
    ($t - l.signup_ms) / {DAY_MS} AS tenure_days,
    l.plan, l.acquisition_channel, l.device,
    CASE WHEN $t - l.signup_ms < {14 * DAY_MS} THEN 'new'
         WHEN coalesce(a.active_days_7d, 0) = 0 THEN 'lapsing' ELSE 'active' END AS lifecycle_stage
FROM learners l
JOIN agg a USING (learner_id)
LEFT JOIN future f USING (learner_id)
LEFT JOIN completion c USING (learner_id)
LEFT JOIN last10 t10 USING (learner_id)
LEFT JOIN streak s USING (learner_id)
WHERE l.signup_ms <= $t AND a.last_activity > $t - $horizon
  AND NOT coalesce(a.last_activity <= a.last_cancel, false)
"""


def snapshot(con, t: int, horizon_ms: int, data_end: int) -> pd.DataFrame:
    frame = con.execute(SNAPSHOT, {"t": t, "horizon": horizon_ms, "labelled": t + horizon_ms <= data_end}).df()
    for name in COUNTS:
        frame[name] = frame[name].fillna(0.0)
    columns = ["learner_id", "as_of", "churned", *FEATURES, "plan", "acquisition_channel", "device",
               "lifecycle_stage"]
    frame = frame[columns]
    for name in ["churned", *FEATURES]:
        frame[name] = frame[name].astype(float)
    return frame


def compute_table(data: Path, start=None, end=None, every_days=14, horizon_days=30) -> pd.DataFrame:
    con = load(data)
    every_ms, horizon_ms = every_days * DAY_MS, horizon_days * DAY_MS
    first, data_end = con.execute("SELECT min(ts), max(ts) FROM events").fetchone()
    default_from, to = feature_peers.default_times(first, data_end, every_ms, horizon_ms)

    def day(text):
        return con.execute("SELECT epoch_ms(CAST(? AS TIMESTAMPTZ))", [text]).fetchone()[0]

    t0 = default_from if start is None else day(start)
    t1 = to if end is None else day(end)
    frames = [snapshot(con, t, horizon_ms, data_end) for t in range(t0, t1 + 1, every_ms)]
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["learner_id", "as_of"], kind="stable").reset_index(drop=True)


def write(table: pd.DataFrame, out: Path):
    table["as_of"] = pd.to_datetime(table["as_of"], unit="ms", utc=True)
    table.to_parquet(out, index=False)


if __name__ == "__main__":
    feature_peers.main(__doc__.splitlines()[0], compute_table, write)
