//! Retention: a learner's events older than a cutoff, replaced by a few
//! summary rows that give the same features at every as-of time at least
//! [`FEATURE_WINDOW_DAYS`] after the cutoff.
//!
//! Why it is exact: at such an as-of time every event older than the cutoff
//! is outside each feature's window (7, 14 and 30 days), so of those events
//! the features read only whole-history figures, and a summary keeps each:
//! - occurrences per (event type, course): lessons completed and completion
//!   per course, enrolments, deadlines met, the courses a learner has (course
//!   start, end and deadline features) — one row per pair, `count` summed;
//! - the latest time of each type: days since the last login, activity,
//!   community event, custom event — the row takes its group's latest `ts`;
//! - the quiz attempts that the mean of the last 10 scores reads, kept as
//!   they are (every attempt at or after the 10th-latest scored occurrence);
//! - the check-ins a streak can still reach, kept as they are (the latest
//!   ones back to the first gap of 2 days or more: a streak counts
//!   consecutive days, so it never crosses such a gap, whatever the as-of
//!   time);
//! - payments, coupons and cancellations, kept as they are: the amount paid
//!   is a floating-point sum in time order, which a pre-added summary would
//!   not reproduce bit for bit, and they are few.
//!
//! Measures that only windowed features read (durations, latencies, stalls,
//! unkept scores) are dropped. `tests/retention.rs` checks the equality on
//! random histories against `churn-features` itself.

use std::collections::BTreeMap;

use churn_core::EventType;

use crate::{ContractEvent, StoreError};

/// The longest window any feature reads, in days: an as-of time must be at
/// least this long after a retention cutoff.
pub const FEATURE_WINDOW_DAYS: i64 = 30;

const DAY_MS: i64 = 86_400_000;

/// The quiz attempts whose scores the "mean of the last scores" feature reads.
const LAST_QUIZZES: u64 = 10;

/// The earliest as-of time a store compacted at `cutoff` answers exactly.
pub fn earliest_exact_as_of(cutoff: i64) -> i64 {
    cutoff.saturating_add(FEATURE_WINDOW_DAYS * DAY_MS)
}

/// Refuses a history at `as_of` that a store compacted at `cutoff` cannot
/// give exactly.
pub fn check_as_of(cutoff: Option<i64>, as_of: i64) -> Result<(), StoreError> {
    match cutoff {
        Some(cutoff) if as_of < earliest_exact_as_of(cutoff) => {
            Err(StoreError::BeforeRetention { as_of, cutoff })
        }
        _ => Ok(()),
    }
}

fn known(e: &ContractEvent) -> Option<EventType> {
    EventType::parse(&e.event_type).ok()
}

/// The summary of one learner's events older than a cutoff (`old`, in any
/// order): raw rows that are kept and summary rows, sorted by time.
pub fn summarize(mut old: Vec<ContractEvent>) -> Vec<ContractEvent> {
    old.sort_by_key(|e| e.ts);
    let quiz_from = quiz_kept_from(&old);
    let checkin_from = checkin_kept_from(&old);
    let mut out = Vec::new();
    let mut groups: BTreeMap<(String, Option<String>), ContractEvent> = BTreeMap::new();
    for e in old {
        let kind = known(&e);
        let kept = match kind {
            Some(EventType::Payment | EventType::CouponRedeem | EventType::SubscriptionCancel) => {
                true
            }
            Some(EventType::QuizAttempt) => quiz_from.is_some_and(|from| e.ts >= from),
            Some(EventType::Checkin) => checkin_from.is_some_and(|from| e.ts >= from),
            _ => false,
        };
        if kept {
            out.push(e);
            continue;
        }
        let key = (e.event_type.clone(), e.course_id.clone());
        match groups.get_mut(&key) {
            Some(group) => {
                group.ts = group.ts.max(e.ts);
                match group.count.checked_add(e.count) {
                    Some(sum) => group.count = sum,
                    None => {
                        // Beyond u32 occurrences: a second row carries on.
                        let full = std::mem::replace(group, bare(e));
                        out.push(full);
                    }
                }
            }
            None => {
                groups.insert(key, bare(e));
            }
        }
    }
    out.extend(groups.into_values());
    out.sort_by_key(|e| e.ts);
    out
}

/// A summary row: the event's type, course, time and count, no measures.
fn bare(e: ContractEvent) -> ContractEvent {
    ContractEvent {
        course_id: e.course_id,
        count: e.count,
        ..ContractEvent::new(e.ts, e.event_type)
    }
}

/// The time from which quiz attempts are kept: that of the 10th-latest
/// scored occurrence (`count` counts), so every attempt the feature can read
/// stays, ties included.
fn quiz_kept_from(sorted: &[ContractEvent]) -> Option<i64> {
    let mut left = LAST_QUIZZES;
    for e in sorted
        .iter()
        .rev()
        .filter(|e| known(e) == Some(EventType::QuizAttempt) && !e.score.is_nan())
    {
        left = left.saturating_sub(u64::from(e.count));
        if left == 0 {
            return Some(e.ts);
        }
    }
    // Fewer than 10 scored occurrences: all of them are read.
    sorted
        .iter()
        .find(|e| known(e) == Some(EventType::QuizAttempt) && !e.score.is_nan())
        .map(|e| e.ts)
}

/// The time from which check-ins are kept: the latest check-in and those
/// before it back to the first gap of at least 2 days.
fn checkin_kept_from(sorted: &[ContractEvent]) -> Option<i64> {
    let mut times = sorted
        .iter()
        .rev()
        .filter(|e| known(e) == Some(EventType::Checkin))
        .map(|e| e.ts);
    let mut from = times.next()?;
    for ts in times {
        if from - ts >= 2 * DAY_MS {
            break;
        }
        from = ts;
    }
    Some(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts_days: f64, event_type: &str, course: Option<&str>, count: u32) -> ContractEvent {
        ContractEvent {
            course_id: course.map(str::to_owned),
            count,
            duration_s: 60.0,
            ..ContractEvent::new((ts_days * DAY_MS as f64) as i64, event_type)
        }
    }

    #[test]
    fn groups_sum_counts_and_keep_the_latest_time() {
        let old = vec![
            event(1.0, "lesson_complete", Some("C1"), 2),
            event(3.0, "lesson_complete", Some("C1"), 1),
            event(2.0, "lesson_complete", Some("C2"), 1),
            event(1.5, "login", None, 1),
            event(4.0, "login", None, 1),
        ];
        let out = summarize(old);
        assert_eq!(out.len(), 3);
        let c1 = out
            .iter()
            .find(|e| e.course_id.as_deref() == Some("C1"))
            .unwrap();
        assert_eq!((c1.count, c1.ts), (3, 3 * DAY_MS));
        assert!(c1.duration_s.is_nan());
        let login = out.iter().find(|e| e.event_type == "login").unwrap();
        assert_eq!((login.count, login.ts), (2, 4 * DAY_MS));
    }

    #[test]
    fn the_last_scored_quizzes_and_the_reachable_checkins_stay_as_they_are() {
        let mut old: Vec<ContractEvent> = (0..15)
            .map(|i| ContractEvent {
                score: if i % 3 == 0 { f64::NAN } else { 0.5 },
                ..event(f64::from(i), "quiz_attempt", None, 1)
            })
            .collect();
        // Check-ins on days 20, 21, 22.5 (runs) and 17 (a 3-day gap before).
        for d in [17.0, 20.0, 21.0, 22.5] {
            old.push(event(d, "checkin", None, 1));
        }
        let out = summarize(old);
        let scored = out
            .iter()
            .filter(|e| e.event_type == "quiz_attempt" && !e.score.is_nan())
            .count();
        assert_eq!(scored, 10);
        let checkins: Vec<i64> = out
            .iter()
            .filter(|e| e.event_type == "checkin")
            .map(|e| e.ts)
            .collect();
        assert_eq!(
            checkins,
            vec![
                17 * DAY_MS,
                20 * DAY_MS,
                21 * DAY_MS,
                22 * DAY_MS + DAY_MS / 2
            ]
        );
        let quiz_total: u32 = out
            .iter()
            .filter(|e| e.event_type == "quiz_attempt")
            .map(|e| e.count)
            .sum();
        assert_eq!(quiz_total, 15, "every occurrence is still counted");
    }
}
