"""What the three feature peers (benches/features_pandas.py, features_polars.py,
features_duckdb.py) share: the table's columns, the as-of grid and the command
line. Each computes the features and labels in its own way; these are only the
names and the rule for the dates, which tests/python/test_features.py checks
against `churn features` as well.
"""

import argparse
from pathlib import Path

DAY_MS = 86_400_000

# Features that count (absent = 0); the others are missing when there is nothing to measure.
COUNTS = [
    "logins_7d", "logins_30d", "active_days_7d", "active_days_30d", "watch_minutes_7d", "watch_minutes_30d",
    "watch_minutes_trend_7d", "courses_enrolled", "lessons_completed", "lessons_completed_30d",
    "quiz_attempts_30d", "forum_posts_30d", "checkins_30d", "checkin_streak_days", "live_classes_30d",
    "refund_views_7d", "refund_views_30d", "support_tickets_7d", "support_tickets_30d", "payments_total",
    "amount_paid_total", "coupon_redemptions_total", "cancellations_total",
]
# The numeric features, in the table's order (after learner_id, as_of, churned).
FEATURES = [
    "days_since_last_login", "days_since_last_activity", "logins_7d", "logins_30d", "active_days_7d",
    "active_days_30d", "watch_minutes_7d", "watch_minutes_30d", "watch_minutes_trend_7d", "courses_enrolled",
    "lessons_completed", "lessons_completed_30d", "completion_rate", "quiz_attempts_30d", "quiz_mean_score_30d",
    "quiz_mean_score_last10", "forum_posts_30d", "checkins_30d", "checkin_streak_days",
    "days_since_last_community", "live_classes_30d", "live_mean_latency_ms_30d", "live_stalls_per_class_30d",
    "refund_views_7d", "refund_views_30d", "support_tickets_7d", "support_tickets_30d", "payments_total",
    "amount_paid_total", "days_since_last_payment", "coupon_redemptions_total", "cancellations_total",
    "tenure_days",
]


def default_times(first_ts: int, data_end: int, every_ms: int, horizon_ms: int):
    """The default as-of grid: every `every_ms` back from the end of the data
    (at 00:00 UTC), from the earliest time with a horizon of history behind it."""
    to = data_end // DAY_MS * DAY_MS
    earliest = first_ts + horizon_ms
    steps = max(to - earliest, 0) // every_ms
    return to - steps * every_ms, to


def main(description: str, compute_table, write):
    """The peers' command line: compute the table, then `write(table, path)`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--from", dest="start")
    parser.add_argument("--to", dest="end")
    parser.add_argument("--every-days", type=int, default=14)
    parser.add_argument("--horizon-days", type=int, default=30)
    args = parser.parse_args()
    table = compute_table(args.data, args.start, args.end, args.every_days, args.horizon_days)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(table, args.out)
    print(f"{len(table)} examples -> {args.out}")
