"""The training table of DESIGN.md "Features and labels", written in pandas.

An independent implementation of every feature and label that `churn features`
computes: it shares no code with the Rust crates, only the written definitions
(DESIGN.md and the descriptions in crates/churn-features/src/registry.rs). It is
the peer of the feature benchmark (benches/features_vs_pandas.py) and the
reference of the agreement test (tests/python/test_features.py).

It is written the way a data scientist would write it: load the tables, then
for each as-of time filter the events and aggregate with groupby.

    python benches/features_pandas.py --data data/ --out table.parquet \
        [--from 2026-02-09] [--to 2026-06-29] [--every-days 14] [--horizon-days 30]
"""

from pathlib import Path

import numpy as np
import pandas as pd

import feature_peers
from feature_peers import DAY_MS

ACTIVITY = ["login", "video_watch", "lesson_complete", "quiz_attempt", "forum_post", "checkin", "live_class"]


def read_table(data: Path, name: str) -> pd.DataFrame:
    parquet, csv = data / f"{name}.parquet", data / f"{name}.csv"
    if parquet.exists():
        return pd.read_parquet(parquet)
    return pd.read_csv(csv)


def to_ms(column: pd.Series) -> np.ndarray:
    return pd.to_datetime(column, utc=True, format="ISO8601").astype("datetime64[ms, UTC]").astype("int64").to_numpy()


def load(data: Path):
    learners = read_table(data, "learners")
    courses = read_table(data, "courses")
    events = read_table(data, "events")
    learners = learners.assign(signup_ms=to_ms(learners["signup_at"])).set_index("learner_id")
    events = pd.DataFrame(
        {
            "learner_id": events["learner_id"].astype(str),
            "ts": to_ms(events["ts"]),
            "event_type": events["event_type"].astype(str),
            "course_id": events["course_id"],
            "duration_s": events["duration_s"].astype(float),
            "score": events["score"].astype(float),
            "amount": events["amount"].astype(float),
            "latency_ms": events["latency_ms"].astype(float),
            "stalls": events["stalls"].astype(float),
        }
    )
    # Ties in time keep the file's order: "the last 10 quizzes" depends on it.
    events = events.sort_values(["learner_id", "ts"], kind="stable").reset_index(drop=True)
    lessons = courses.set_index("course_id")["lessons"].astype(float)
    return learners, lessons, events


def snapshot(learners, lessons, events, t: int, horizon_ms: int, data_end: int) -> pd.DataFrame:
    ts = events["ts"].to_numpy()
    past = events[ts <= t]
    future = events[(ts > t) & (ts <= t + horizon_ms)]
    age = t - past["ts"]
    kind = past["event_type"]
    is_activity = kind.isin(ACTIVITY)

    def last_ts(mask):
        return past.loc[mask, "ts"].groupby(past.loc[mask, "learner_id"]).max()

    def count(mask):
        return mask.groupby(past["learner_id"]).sum()

    # Who is an example at t.
    last_activity = last_ts(is_activity)
    last_cancel = last_ts(kind == "subscription_cancel")
    ids = learners.index[learners["signup_ms"] <= t]
    frame = pd.DataFrame(index=pd.Index(ids, name="learner_id"))
    frame["last_activity"] = last_activity
    frame["last_cancel"] = last_cancel
    eligible = (frame["last_activity"] > t - horizon_ms) & ~(frame["last_activity"] <= frame["last_cancel"])
    frame = frame[eligible.to_numpy()].copy()

    # Label.
    if t + horizon_ms > data_end:
        frame["churned"] = np.nan
    else:
        f_kind = future["event_type"]
        active = f_kind.isin(ACTIVITY).groupby(future["learner_id"]).any()
        cancelled = (f_kind == "subscription_cancel").groupby(future["learner_id"]).any()
        active = active.reindex(frame.index, fill_value=False).astype(bool)
        cancelled = cancelled.reindex(frame.index, fill_value=False).astype(bool)
        frame["churned"] = (~active | cancelled).astype(float)

    in7, in14, in30 = age < 7 * DAY_MS, age < 14 * DAY_MS, age < 30 * DAY_MS
    out = {}
    out["days_since_last_login"] = (t - last_ts(kind == "login")) / DAY_MS
    out["days_since_last_activity"] = (t - frame["last_activity"]) / DAY_MS
    out["logins_7d"] = count((kind == "login") & in7)
    out["logins_30d"] = count((kind == "login") & in30)

    active_days = pd.DataFrame({"learner_id": past["learner_id"], "day": age // DAY_MS})[is_activity & in30]
    active_days = active_days.drop_duplicates()
    out["active_days_7d"] = active_days[active_days["day"] < 7].groupby("learner_id").size()
    out["active_days_30d"] = active_days.groupby("learner_id").size()

    watch = (kind == "video_watch") & past["duration_s"].notna()
    seconds = past["duration_s"].where(watch, 0.0)
    minutes_7d = seconds.where(in7, 0.0).groupby(past["learner_id"]).sum() / 60.0
    minutes_prev = seconds.where(~in7 & in14, 0.0).groupby(past["learner_id"]).sum() / 60.0
    out["watch_minutes_7d"] = minutes_7d
    out["watch_minutes_30d"] = seconds.where(in30, 0.0).groupby(past["learner_id"]).sum() / 60.0
    out["watch_minutes_trend_7d"] = minutes_7d - minutes_prev

    enrolled = past.loc[(kind == "course_enroll") & past["course_id"].notna(), ["learner_id", "course_id"]]
    enrolled = enrolled.drop_duplicates()
    out["courses_enrolled"] = enrolled.groupby("learner_id").size()
    completes = kind == "lesson_complete"
    out["lessons_completed"] = count(completes)
    out["lessons_completed_30d"] = count(completes & in30)
    done = past[completes & past["course_id"].notna()].groupby(["learner_id", "course_id"]).size().rename("done")
    progress = enrolled.join(done, on=["learner_id", "course_id"]).fillna({"done": 0})
    progress["lessons"] = progress["course_id"].map(lessons)
    progress["done"] = np.minimum(progress["done"], progress["lessons"])
    per_learner = progress.groupby("learner_id")[["done", "lessons"]].sum()
    out["completion_rate"] = (per_learner["done"] / per_learner["lessons"]).where(per_learner["lessons"] > 0)

    quiz = kind == "quiz_attempt"
    out["quiz_attempts_30d"] = count(quiz & in30)
    scored = quiz & past["score"].notna()
    out["quiz_mean_score_30d"] = past.loc[scored & in30, "score"].groupby(past.loc[scored & in30, "learner_id"]).mean()
    last10 = past.loc[scored, ["learner_id", "score"]].groupby("learner_id").tail(10)
    out["quiz_mean_score_last10"] = last10.groupby("learner_id")["score"].mean()

    out["forum_posts_30d"] = count((kind == "forum_post") & in30)
    checkin = kind == "checkin"
    out["checkins_30d"] = count(checkin & in30)
    days = pd.DataFrame({"learner_id": past["learner_id"], "day": age // DAY_MS})[checkin].drop_duplicates()
    days = days.sort_values(["learner_id", "day"])
    rank = days.groupby("learner_id").cumcount()
    first = days.groupby("learner_id")["day"].transform("min")
    in_run = (days["day"] - rank == first) & (first <= 1)
    out["checkin_streak_days"] = in_run.groupby(days["learner_id"]).sum()
    out["days_since_last_community"] = (t - last_ts(kind.isin(["forum_post", "checkin"]))) / DAY_MS

    live = (kind == "live_class") & in30
    out["live_classes_30d"] = count(live)
    lat = past.loc[live & past["latency_ms"].notna()]
    out["live_mean_latency_ms_30d"] = lat.groupby("learner_id")["latency_ms"].mean()
    stalls = past.loc[live & past["stalls"].notna()]
    out["live_stalls_per_class_30d"] = stalls.groupby("learner_id")["stalls"].mean()

    out["refund_views_7d"] = count((kind == "refund_page_view") & in7)
    out["refund_views_30d"] = count((kind == "refund_page_view") & in30)
    out["support_tickets_7d"] = count((kind == "support_ticket") & in7)
    out["support_tickets_30d"] = count((kind == "support_ticket") & in30)

    payment = kind == "payment"
    out["payments_total"] = count(payment)
    out["amount_paid_total"] = past.loc[payment, "amount"].groupby(past.loc[payment, "learner_id"]).sum()
    out["days_since_last_payment"] = (t - last_ts(payment)) / DAY_MS
    out["coupon_redemptions_total"] = count(kind == "coupon_redeem")
    out["cancellations_total"] = count(kind == "subscription_cancel")

    profile = learners.loc[frame.index]
    tenure = t - profile["signup_ms"]
    out["tenure_days"] = tenure / DAY_MS

    counts = {
        "logins_7d", "logins_30d", "active_days_7d", "active_days_30d", "watch_minutes_7d", "watch_minutes_30d",
        "watch_minutes_trend_7d", "courses_enrolled", "lessons_completed", "lessons_completed_30d",
        "quiz_attempts_30d", "forum_posts_30d", "checkins_30d", "checkin_streak_days", "live_classes_30d",
        "refund_views_7d", "refund_views_30d", "support_tickets_7d", "support_tickets_30d", "payments_total",
        "amount_paid_total", "coupon_redemptions_total", "cancellations_total",
    }
    table = pd.DataFrame(index=frame.index)
    table["as_of"] = t
    table["churned"] = frame["churned"]
    for name, values in out.items():
        values = values.reindex(frame.index).astype(float)
        table[name] = values.fillna(0.0) if name in counts else values
    table["plan"] = profile["plan"].astype(str)
    table["acquisition_channel"] = profile["acquisition_channel"].astype(str)
    table["device"] = profile["device"]
    lapsing = table["active_days_7d"] == 0
    table["lifecycle_stage"] = np.where(tenure < 14 * DAY_MS, "new", np.where(lapsing, "lapsing", "active"))
    return table.reset_index()


def compute_table(data: Path, start=None, end=None, every_days=14, horizon_days=30) -> pd.DataFrame:
    learners, lessons, events = load(data)
    every_ms, horizon_ms = every_days * DAY_MS, horizon_days * DAY_MS
    data_end = int(events["ts"].max())
    default_from, default_to = feature_peers.default_times(int(events["ts"].min()), data_end, every_ms, horizon_ms)
    t0 = default_from if start is None else int(pd.Timestamp(start, tz="UTC").value // 1_000_000)
    t1 = default_to if end is None else int(pd.Timestamp(end, tz="UTC").value // 1_000_000)
    frames = [snapshot(learners, lessons, events, t, horizon_ms, data_end) for t in range(t0, t1 + 1, every_ms)]
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["learner_id", "as_of"], kind="stable").reset_index(drop=True)


def write(table: pd.DataFrame, out: Path):
    table["as_of"] = pd.to_datetime(table["as_of"], unit="ms", utc=True)
    table.to_parquet(out, index=False)


if __name__ == "__main__":
    feature_peers.main(__doc__.splitlines()[0], compute_table, write)
