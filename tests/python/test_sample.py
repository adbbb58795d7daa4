"""Independent checks of the committed sample, written with pandas.

They re-implement the label definition of DESIGN.md ("Features and labels")
without any of our Rust code and compare it with the simulator's truth file,
and check that the Parquet files are what a pandas user expects.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).resolve().parents[2] / "data"
ACTIVITY = {"login", "video_watch", "lesson_complete", "quiz_attempt", "forum_post", "checkin", "live_class"}
HORIZON = pd.Timedelta(days=30)


@pytest.fixture(scope="module")
def tables():
    return {name: pd.read_parquet(DATA / f"{name}.parquet") for name in ("learners", "courses", "events", "assignments")}


@pytest.fixture(scope="module")
def truth():
    return pd.read_csv(DATA / "truth_learners.csv"), json.loads((DATA / "truth.json").read_text())


def test_timestamps_are_utc_and_columns_match_the_contract(tables):
    assert str(tables["learners"]["signup_at"].dtype) == "datetime64[ms, UTC]"
    assert str(tables["events"]["ts"].dtype) == "datetime64[ms, UTC]"
    assert list(tables["events"].columns) == [
        "learner_id", "ts", "event_type", "course_id", "duration_s", "score", "amount", "latency_ms", "stalls",
    ]
    assert tables["learners"]["learner_id"].is_unique
    assert set(tables["learners"]["plan"]) <= {"free", "monthly", "annual"}
    assert set(tables["courses"]["level"]) == {"beginner", "intermediate", "advanced"}


def test_events_follow_signup_and_measures_are_in_range(tables):
    events = tables["events"].merge(tables["learners"][["learner_id", "signup_at"]], on="learner_id", how="left")
    assert events["signup_at"].notna().all(), "every event has a known learner"
    assert (events["ts"] >= events["signup_at"]).all()
    quiz = events[events["event_type"] == "quiz_attempt"]["score"]
    assert quiz.between(0, 1).all() and quiz.notna().all()
    assert (events["duration_s"].dropna() > 0).all()
    # Missing is missing: a login carries no measures at all.
    logins = events[events["event_type"] == "login"]
    assert logins[["duration_s", "score", "amount", "latency_ms", "stalls"]].isna().all().all()


def test_outcomes_recomputed_with_pandas_equal_the_drawn_outcomes(tables, truth):
    learners_truth, _ = truth
    events = tables["events"]
    assignments = tables["assignments"]
    assert len(assignments) > 1000
    merged = events.merge(assignments[["learner_id", "assigned_at"]], on="learner_id")
    window = merged[(merged["ts"] > merged["assigned_at"]) & (merged["ts"] <= merged["assigned_at"] + HORIZON)]
    active = window[window["event_type"].isin(ACTIVITY)].groupby("learner_id").size()
    cancelled = window[window["event_type"] == "subscription_cancel"].groupby("learner_id").size()
    recomputed = assignments.set_index("learner_id").index.to_series().map(
        lambda lid: int(active.get(lid, 0) == 0 or cancelled.get(lid, 0) > 0)
    )
    drawn = learners_truth.dropna(subset=["arm"]).set_index("learner_id")["churned"].astype(int)
    assert recomputed.sort_index().equals(drawn.sort_index())


def test_assigned_learners_were_active_in_the_30_days_before(tables):
    events, assignments = tables["events"], tables["assignments"]
    merged = events.merge(assignments[["learner_id", "assigned_at"]], on="learner_id")
    before = merged[
        (merged["ts"] <= merged["assigned_at"])
        & (merged["ts"] > merged["assigned_at"] - HORIZON)
        & merged["event_type"].isin(ACTIVITY)
    ]
    assert set(before["learner_id"]) == set(assignments["learner_id"])


def test_true_effects_are_means_of_probability_differences(truth):
    learners_truth, summary = truth
    assigned = learners_truth.dropna(subset=["arm"])
    for arm in summary["experiment"]["arms"]:
        effect = (assigned[f"p_{arm['arm']}"] - assigned["p_control"]).mean()
        assert effect == pytest.approx(arm["true_effect"], abs=1e-12)
        mine = assigned[assigned["arm"] == arm["arm"]]
        assert len(mine) == arm["n"]
        assert mine["churned"].sum() == arm["churned"]
