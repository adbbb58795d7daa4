//! The feature definitions: one learner's vector at an as-of time `t`, from that
//! learner's profile and raw events.
//!
//! This is the only implementation. The batch table runs it per learner and
//! snapshot; the server runs it per request.
//!
//! Days are counted back from `t`, not on the calendar: day `k` before `t` is
//! `(t − (k+1)·24h, t − k·24h]`, so a feature never depends on a time zone and a
//! window "7d" is exactly `(t − 7 days, t]`.

use churn_core::{DAY_MS, Event, EventKind, EventType, Learner};

use crate::FeatureLayout;
use crate::registry::{CATEGORICAL_COUNT, NUMERIC_COUNT};

/// Tenure below which a learner is in the `new` lifecycle stage.
pub const NEW_LEARNER_DAYS: i64 = 14;
/// Number of latest scored quiz attempts averaged by `quiz_mean_score_last10`.
const LAST_QUIZZES: usize = 10;

/// The profile fields features read (the learners table row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile<'a> {
    pub signup_at: i64,
    pub plan: &'a str,
    pub acquisition_channel: &'a str,
    pub device: Option<&'a str>,
    /// The learner's numeric attributes, in its source's order.
    pub numeric_attributes: &'a [f64],
    /// The learner's categorical attributes, in its source's order.
    pub categorical_attributes: &'a [Option<String>],
}

impl<'a> From<&'a Learner> for Profile<'a> {
    fn from(learner: &'a Learner) -> Self {
        Profile {
            signup_at: learner.signup_at,
            plan: &learner.plan,
            acquisition_channel: &learner.acquisition_channel,
            device: learner.device.as_deref(),
            numeric_attributes: &learner.numeric_attributes,
            categorical_attributes: &learner.categorical_attributes,
        }
    }
}

/// One learner's events in the contract's canonical order (by time, ties
/// broken by [`Event::canonical_cmp`]): the only form the definitions accept,
/// because every window is found by binary search, and because a definition
/// that reads the latest events (`quiz_mean_score_last10`) must not depend on
/// the order a file had events of the same instant in.
#[derive(Debug, Clone, Copy)]
pub struct SortedEvents<'a>(&'a [Event]);

/// The events given to [`SortedEvents::check`] were not in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("events are not in canonical order: event {index} comes before the one before it")]
pub struct UnsortedEvents {
    /// 0-based position of the first event out of order.
    pub index: usize,
}

impl<'a> SortedEvents<'a> {
    /// Sorts `events` into canonical order and wraps them.
    pub fn sort(events: &'a mut [Event]) -> Self {
        if !events.is_sorted_by(|a, b| a.canonical_cmp(b).is_le()) {
            events.sort_by(Event::canonical_cmp);
        }
        SortedEvents(events)
    }

    /// Wraps events that must already be in canonical order.
    pub fn check(events: &'a [Event]) -> Result<Self, UnsortedEvents> {
        match events
            .windows(2)
            .position(|w| w[1].canonical_cmp(&w[0]).is_lt())
        {
            Some(i) => Err(UnsortedEvents { index: i + 1 }),
            None => Ok(SortedEvents(events)),
        }
    }

    /// The events, oldest first.
    pub fn as_slice(self) -> &'a [Event] {
        self.0
    }

    /// The events with `ts ≤ t`: all that features may read.
    pub fn up_to(self, t: i64) -> &'a [Event] {
        &self.0[..self.0.partition_point(|e| e.ts <= t)]
    }
}

/// One learner's feature vector, in the order of
/// [`crate::FeatureSet::features`]: the registry's features first.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow<'a> {
    /// Numeric values ([`crate::registry::NUMERIC`], then the feature set's);
    /// NaN is missing.
    pub numeric: Vec<f64>,
    /// Categorical values ([`crate::registry::CATEGORICAL`], then the
    /// feature set's); `None` is missing.
    pub categorical: Vec<Option<&'a str>>,
}

impl FeatureRow<'_> {
    /// The value of a numeric feature by name.
    pub fn number(&self, name: &str) -> Option<f64> {
        let i = crate::registry::NUMERIC
            .iter()
            .position(|f| f.name == name)?;
        Some(self.numeric[i])
    }

    /// The value of a categorical feature by name (`Some(None)` when missing).
    pub fn category(&self, name: &str) -> Option<Option<&str>> {
        let i = crate::registry::CATEGORICAL
            .iter()
            .position(|f| f.name == name)?;
        Some(self.categorical[i])
    }
}

/// The lifecycle stage at `t`: `new` (tenure under [`NEW_LEARNER_DAYS`]),
/// `lapsing` (no learning activity in the last 7 days) or `active`.
pub fn lifecycle_stage(tenure_ms: i64, active_last_7d: bool) -> &'static str {
    if tenure_ms < NEW_LEARNER_DAYS * DAY_MS {
        "new"
    } else if active_last_7d {
        "active"
    } else {
        "lapsing"
    }
}

/// What the generic features of one custom event type add up.
#[derive(Clone, Copy, Default)]
struct CustomTally {
    count_7d: u64,
    count_30d: u64,
    /// Bit k: one on day k before t (k < 30).
    day_mask: u32,
    last: Option<i64>,
}

/// Per-course progress of one learner.
#[derive(Clone, Copy)]
struct CourseProgress {
    course: u32,
    completions: u64,
    enrolled: bool,
}

fn days(ms: i64) -> f64 {
    ms as f64 / DAY_MS as f64
}

fn days_since(t: i64, last: Option<i64>) -> f64 {
    last.map_or(f64::NAN, |ts| days(t - ts))
}

fn ratio(sum: f64, count: u64) -> f64 {
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// Computes every feature of one learner at as-of time `t`: the registry's,
/// then the ones `layout` adds (custom event types, learner attributes).
///
/// Reads only events with `ts ≤ t`. An event row stands for `count`
/// occurrences: counts weigh by it; `duration_s`, `amount` and `stalls` are
/// the row's totals; `score` and `latency_ms` are its occurrences' mean, so
/// averages weigh them by `count`. `course_lessons[c]` is the number of
/// lessons of course index `c` (the courses table order); an event whose
/// course is not in it counts towards nothing course-specific.
pub fn compute<'a>(
    profile: &Profile<'a>,
    events: SortedEvents<'_>,
    t: i64,
    course_lessons: &[u32],
    layout: &FeatureLayout,
) -> FeatureRow<'a> {
    let past = events.up_to(t);
    let mut custom = vec![CustomTally::default(); layout.custom_types()];

    let mut last_login = None;
    let mut last_activity = None;
    let mut last_community = None;
    let mut last_payment = None;
    let (mut logins_7d, mut logins_30d) = (0u64, 0u64);
    let mut active_day_mask = 0u64; // bit k: learning activity on day k before t (k < 30)
    let (mut watch_s_7d, mut watch_s_prev_7d, mut watch_s_30d) = (0.0, 0.0, 0.0);
    let (mut lessons_completed, mut lessons_completed_30d) = (0u64, 0u64);
    let mut courses: Vec<CourseProgress> = Vec::new();
    let (mut quiz_attempts_30d, mut quiz_scored_30d, mut quiz_score_sum_30d) = (0u64, 0u64, 0.0);
    let (mut forum_posts_30d, mut checkins_30d) = (0u64, 0u64);
    let (mut live_classes_30d, mut latency_n, mut latency_sum, mut stalls_n, mut stalls_sum) =
        (0u64, 0u64, 0.0, 0u64, 0.0);
    let (mut refund_7d, mut refund_30d, mut tickets_7d, mut tickets_30d) = (0u64, 0u64, 0u64, 0u64);
    let (mut payments, mut amount_paid, mut coupons, mut cancellations) = (0u64, 0.0, 0u64, 0u64);

    for e in past {
        let age = t - e.ts; // ≥ 0
        let in_7d = age < 7 * DAY_MS;
        let in_30d = age < 30 * DAY_MS;
        let n = u64::from(e.count);
        if e.event_type.is_activity() {
            last_activity = Some(e.ts);
            if in_30d {
                active_day_mask |= 1 << (age / DAY_MS);
            }
        }
        let event_type = match e.event_type {
            EventKind::Known(known) => known,
            EventKind::Custom { index, .. } => {
                if let Some(slot) = layout.custom_slot(index) {
                    let tally = &mut custom[slot];
                    tally.count_7d += n * u64::from(in_7d);
                    tally.count_30d += n * u64::from(in_30d);
                    if in_30d {
                        tally.day_mask |= 1 << (age / DAY_MS);
                    }
                    tally.last = Some(e.ts);
                }
                continue;
            }
        };
        match event_type {
            EventType::Login => {
                last_login = Some(e.ts);
                logins_7d += n * u64::from(in_7d);
                logins_30d += n * u64::from(in_30d);
            }
            EventType::VideoWatch if !e.duration_s.is_nan() => {
                if in_7d {
                    watch_s_7d += e.duration_s;
                } else if age < 14 * DAY_MS {
                    watch_s_prev_7d += e.duration_s;
                }
                if in_30d {
                    watch_s_30d += e.duration_s;
                }
            }
            EventType::LessonComplete => {
                lessons_completed += n;
                lessons_completed_30d += n * u64::from(in_30d);
                if let Some(course) = e.course() {
                    course_entry(&mut courses, course).completions += n;
                }
            }
            EventType::CourseEnroll => {
                if let Some(course) = e.course() {
                    course_entry(&mut courses, course).enrolled = true;
                }
            }
            EventType::QuizAttempt if in_30d => {
                quiz_attempts_30d += n;
                if !e.score.is_nan() {
                    quiz_scored_30d += n;
                    quiz_score_sum_30d += e.score * n as f64;
                }
            }
            EventType::ForumPost => {
                last_community = Some(e.ts);
                forum_posts_30d += n * u64::from(in_30d);
            }
            EventType::Checkin => {
                last_community = Some(e.ts);
                checkins_30d += n * u64::from(in_30d);
            }
            EventType::LiveClass if in_30d => {
                live_classes_30d += n;
                if !e.latency_ms.is_nan() {
                    latency_n += n;
                    latency_sum += e.latency_ms * n as f64;
                }
                if !e.stalls.is_nan() {
                    stalls_n += n;
                    stalls_sum += e.stalls;
                }
            }
            EventType::RefundPageView => {
                refund_7d += n * u64::from(in_7d);
                refund_30d += n * u64::from(in_30d);
            }
            EventType::SupportTicket => {
                tickets_7d += n * u64::from(in_7d);
                tickets_30d += n * u64::from(in_30d);
            }
            EventType::Payment => {
                payments += n;
                last_payment = Some(e.ts);
                if !e.amount.is_nan() {
                    amount_paid += e.amount;
                }
            }
            EventType::CouponRedeem => coupons += n,
            EventType::SubscriptionCancel => cancellations += n,
            _ => {}
        }
    }

    let (mut enrolled_lessons, mut enrolled_completed) = (0u64, 0u64);
    for c in courses.iter().filter(|c| c.enrolled) {
        if let Some(&lessons) = course_lessons.get(c.course as usize) {
            enrolled_lessons += u64::from(lessons);
            enrolled_completed += c.completions.min(u64::from(lessons));
        }
    }
    let completion_rate = if enrolled_lessons == 0 {
        f64::NAN
    } else {
        enrolled_completed as f64 / enrolled_lessons as f64
    };

    let tenure_ms = t - profile.signup_at;
    let minutes = |seconds: f64| seconds / 60.0;
    let registry_numeric: [f64; NUMERIC_COUNT] = [
        days_since(t, last_login),
        days_since(t, last_activity),
        logins_7d as f64,
        logins_30d as f64,
        f64::from((active_day_mask & 0x7f).count_ones()),
        f64::from(active_day_mask.count_ones()),
        minutes(watch_s_7d),
        minutes(watch_s_30d),
        minutes(watch_s_7d) - minutes(watch_s_prev_7d),
        courses.iter().filter(|c| c.enrolled).count() as f64,
        lessons_completed as f64,
        lessons_completed_30d as f64,
        completion_rate,
        quiz_attempts_30d as f64,
        ratio(quiz_score_sum_30d, quiz_scored_30d),
        mean_of_last_scores(past, LAST_QUIZZES),
        forum_posts_30d as f64,
        checkins_30d as f64,
        f64::from(checkin_streak(past, t)),
        days_since(t, last_community),
        live_classes_30d as f64,
        ratio(latency_sum, latency_n),
        ratio(stalls_sum, stalls_n),
        refund_7d as f64,
        refund_30d as f64,
        tickets_7d as f64,
        tickets_30d as f64,
        payments as f64,
        amount_paid,
        days_since(t, last_payment),
        coupons as f64,
        cancellations as f64,
        days(tenure_ms),
    ];
    let registry_categorical: [Option<&str>; CATEGORICAL_COUNT] = [
        Some(profile.plan),
        Some(profile.acquisition_channel),
        profile.device,
        Some(lifecycle_stage(tenure_ms, active_day_mask & 0x7f != 0)),
    ];
    let mut numeric =
        Vec::with_capacity(NUMERIC_COUNT + crate::FEATURES_PER_CUSTOM_TYPE * custom.len() + 4);
    numeric.extend_from_slice(&registry_numeric);
    for tally in &custom {
        numeric.extend([
            tally.count_7d as f64,
            tally.count_30d as f64,
            f64::from(tally.day_mask.count_ones()),
            days_since(t, tally.last),
        ]);
    }
    if let Some(ends) = layout.course_ends() {
        // The end of the learner's courses as known at t (the label's
        // `finished_at`); missing without a course, or once they are over.
        let end = crate::label::finished_at(past, t, ends).filter(|&end| end > t);
        numeric.push(end.map_or(f64::NAN, |end| days(end - t)));
    }
    if let Some(starts) = layout.course_starts() {
        // The latest start among the learner's courses that have started.
        let latest = past
            .iter()
            .filter_map(|e| starts.get(e.course()? as usize).copied().flatten())
            .filter(|&start| start <= t)
            .max();
        numeric.push(latest.map_or(f64::NAN, |start| days(t - start)));
    }
    if let Some(deadlines) = layout.deadlines() {
        let (missed, next) = deadline_features(past, t, deadlines);
        numeric.push(missed);
        numeric.push(next.map_or(f64::NAN, |due| days(due - t)));
    }
    numeric.extend(layout.numeric_attributes(profile.numeric_attributes));
    let mut categorical = Vec::with_capacity(CATEGORICAL_COUNT + 4);
    categorical.extend_from_slice(&registry_categorical);
    categorical.extend(layout.categorical_attributes(profile.categorical_attributes));
    FeatureRow {
        numeric,
        categorical,
    }
}

fn course_entry(courses: &mut Vec<CourseProgress>, course: u32) -> &mut CourseProgress {
    let i = match courses.iter().position(|c| c.course == course) {
        Some(i) => i,
        None => {
            courses.push(CourseProgress {
                course,
                completions: 0,
                enrolled: false,
            });
            courses.len() - 1
        }
    };
    &mut courses[i]
}

/// Mean score of the latest `n` quiz attempts that have a score (a row of
/// `count` attempts counts as that many, the oldest of them cut off first).
fn mean_of_last_scores(past: &[Event], n: usize) -> f64 {
    let mut left = n as u64;
    let (mut sum, mut count) = (0.0, 0u64);
    for e in past
        .iter()
        .rev()
        .filter(|e| e.event_type == EventType::QuizAttempt && !e.score.is_nan())
    {
        let taken = u64::from(e.count).min(left);
        sum += e.score * taken as f64;
        count += taken;
        left -= taken;
        if left == 0 {
            break;
        }
    }
    ratio(sum, count)
}

/// Consecutive days with a check-in, ending on day 0 (the 24 h up to `t`) or,
/// when day 0 has none, on day 1.
fn checkin_streak(past: &[Event], t: i64) -> u32 {
    let mut streak = 0;
    let mut current_day = None;
    for e in past
        .iter()
        .rev()
        .filter(|e| e.event_type == EventType::Checkin)
    {
        let day = (t - e.ts) / DAY_MS;
        match current_day {
            None if day <= 1 => streak = 1,
            None => break,
            Some(d) if day == d => continue,
            Some(d) if day == d + 1 => streak += 1,
            Some(_) => break,
        }
        current_day = Some(day);
    }
    streak
}

/// Over the learner's courses (those of its events up to `t`): the deadlines
/// due by `t` not met (per course and event type, the deadlines due minus
/// the occurrences of that event in that course, never below zero; events
/// carry no item id, so a submission meets one deadline, whichever), and the
/// next deadline after `t`. NaN missed without any course that has deadlines.
fn deadline_features(
    past: &[Event],
    t: i64,
    deadlines: &[Vec<(i64, EventType)>],
) -> (f64, Option<i64>) {
    let mut courses: Vec<u32> = past.iter().filter_map(Event::course).collect();
    courses.sort_unstable();
    courses.dedup();
    let mut any = false;
    let (mut missed, mut next) = (0u64, None::<i64>);
    for &course in &courses {
        let Some(list) = deadlines.get(course as usize).filter(|l| !l.is_empty()) else {
            continue;
        };
        any = true;
        let due = list.partition_point(|&(at, _)| at <= t);
        let mut types: Vec<EventType> = list[..due].iter().map(|&(_, k)| k).collect();
        types.sort_unstable();
        types.dedup();
        for kind in types {
            let owed = list[..due].iter().filter(|&&(_, k)| k == kind).count() as u64;
            let met: u64 = past
                .iter()
                .filter(|e| e.course() == Some(course) && e.event_type == kind)
                .map(|e| u64::from(e.count))
                .sum();
            missed += owed.saturating_sub(met);
        }
        if let Some(&(at, _)) = list.get(due) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    (if any { missed as f64 } else { f64::NAN }, next)
}
