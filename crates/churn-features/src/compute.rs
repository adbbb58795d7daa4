//! The feature definitions: one learner's vector at an as-of time `t`, from that
//! learner's profile and raw events.
//!
//! This is the only implementation. The batch table runs it per learner and
//! snapshot; the server runs it per request.
//!
//! Days are counted back from `t`, not on the calendar: day `k` before `t` is
//! `(t − (k+1)·24h, t − k·24h]`, so a feature never depends on a time zone and a
//! window "7d" is exactly `(t − 7 days, t]`.

use churn_core::{DAY_MS, Event, EventType, Learner, Plan};

use crate::registry::{CATEGORICAL_COUNT, NUMERIC_COUNT};

/// Tenure below which a learner is in the `new` lifecycle stage.
pub const NEW_LEARNER_DAYS: i64 = 14;
/// Number of latest scored quiz attempts averaged by `quiz_mean_score_last10`.
const LAST_QUIZZES: usize = 10;

/// The profile fields features read (the learners table row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile<'a> {
    pub signup_at: i64,
    pub plan: Plan,
    pub acquisition_channel: &'a str,
    pub device: Option<&'a str>,
}

impl<'a> From<&'a Learner> for Profile<'a> {
    fn from(learner: &'a Learner) -> Self {
        Profile {
            signup_at: learner.signup_at,
            plan: learner.plan,
            acquisition_channel: &learner.acquisition_channel,
            device: learner.device.as_deref(),
        }
    }
}

/// One learner's events, sorted by time: the only form the definitions accept,
/// because every window is found by binary search.
#[derive(Debug, Clone, Copy)]
pub struct SortedEvents<'a>(&'a [Event]);

/// The events given to [`SortedEvents::check`] were out of time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("events are not sorted by time: event {index} is earlier than the one before it")]
pub struct UnsortedEvents {
    /// 0-based position of the first event earlier than its predecessor.
    pub index: usize,
}

impl<'a> SortedEvents<'a> {
    /// Sorts `events` by time (stable: ties keep their order) and wraps them.
    pub fn sort(events: &'a mut [Event]) -> Self {
        if !events.is_sorted_by_key(|e| e.ts) {
            events.sort_by_key(|e| e.ts);
        }
        SortedEvents(events)
    }

    /// Wraps events that must already be sorted by time.
    pub fn check(events: &'a [Event]) -> Result<Self, UnsortedEvents> {
        match events.windows(2).position(|w| w[1].ts < w[0].ts) {
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

/// One learner's feature vector, in registry order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow<'a> {
    /// Values of [`crate::registry::NUMERIC`]; NaN is missing.
    pub numeric: [f64; NUMERIC_COUNT],
    /// Values of [`crate::registry::CATEGORICAL`]; `None` is missing.
    pub categorical: [Option<&'a str>; CATEGORICAL_COUNT],
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

/// Per-course progress of one learner.
#[derive(Clone, Copy)]
struct CourseProgress {
    course: u32,
    completions: u32,
    enrolled: bool,
}

fn days(ms: i64) -> f64 {
    ms as f64 / DAY_MS as f64
}

fn days_since(t: i64, last: Option<i64>) -> f64 {
    last.map_or(f64::NAN, |ts| days(t - ts))
}

fn ratio(sum: f64, count: u32) -> f64 {
    if count == 0 {
        f64::NAN
    } else {
        sum / f64::from(count)
    }
}

/// Computes every feature of one learner at as-of time `t`.
///
/// Reads only events with `ts ≤ t`. `course_lessons[c]` is the number of
/// lessons of course index `c` (the courses table order); an event whose
/// course is not in it counts towards nothing course-specific.
pub fn compute<'a>(
    profile: &Profile<'a>,
    events: SortedEvents<'_>,
    t: i64,
    course_lessons: &[u32],
) -> FeatureRow<'a> {
    let past = events.up_to(t);

    let mut last_login = None;
    let mut last_activity = None;
    let mut last_community = None;
    let mut last_payment = None;
    let (mut logins_7d, mut logins_30d) = (0u32, 0u32);
    let mut active_day_mask = 0u32; // bit k: learning activity on day k before t (k < 30)
    let (mut watch_s_7d, mut watch_s_prev_7d, mut watch_s_30d) = (0.0, 0.0, 0.0);
    let (mut lessons_completed, mut lessons_completed_30d) = (0u32, 0u32);
    let mut courses: Vec<CourseProgress> = Vec::new();
    let (mut quiz_attempts_30d, mut quiz_scored_30d, mut quiz_score_sum_30d) = (0u32, 0u32, 0.0);
    let (mut forum_posts_30d, mut checkins_30d) = (0u32, 0u32);
    let (mut live_classes_30d, mut latency_n, mut latency_sum, mut stalls_n, mut stalls_sum) =
        (0u32, 0u32, 0.0, 0u32, 0.0);
    let (mut refund_7d, mut refund_30d, mut tickets_7d, mut tickets_30d) = (0u32, 0u32, 0u32, 0u32);
    let (mut payments, mut amount_paid, mut coupons, mut cancellations) = (0u32, 0.0, 0u32, 0u32);

    for e in past {
        let age = t - e.ts; // ≥ 0
        let in_7d = age < 7 * DAY_MS;
        let in_30d = age < 30 * DAY_MS;
        if e.event_type.is_activity() {
            last_activity = Some(e.ts);
            if in_30d {
                active_day_mask |= 1 << (age / DAY_MS);
            }
        }
        match e.event_type {
            EventType::Login => {
                last_login = Some(e.ts);
                logins_7d += u32::from(in_7d);
                logins_30d += u32::from(in_30d);
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
                lessons_completed += 1;
                lessons_completed_30d += u32::from(in_30d);
                if let Some(course) = e.course() {
                    course_entry(&mut courses, course).completions += 1;
                }
            }
            EventType::CourseEnroll => {
                if let Some(course) = e.course() {
                    course_entry(&mut courses, course).enrolled = true;
                }
            }
            EventType::QuizAttempt if in_30d => {
                quiz_attempts_30d += 1;
                if !e.score.is_nan() {
                    quiz_scored_30d += 1;
                    quiz_score_sum_30d += e.score;
                }
            }
            EventType::ForumPost => {
                last_community = Some(e.ts);
                forum_posts_30d += u32::from(in_30d);
            }
            EventType::Checkin => {
                last_community = Some(e.ts);
                checkins_30d += u32::from(in_30d);
            }
            EventType::LiveClass if in_30d => {
                live_classes_30d += 1;
                if !e.latency_ms.is_nan() {
                    latency_n += 1;
                    latency_sum += e.latency_ms;
                }
                if !e.stalls.is_nan() {
                    stalls_n += 1;
                    stalls_sum += e.stalls;
                }
            }
            EventType::RefundPageView => {
                refund_7d += u32::from(in_7d);
                refund_30d += u32::from(in_30d);
            }
            EventType::SupportTicket => {
                tickets_7d += u32::from(in_7d);
                tickets_30d += u32::from(in_30d);
            }
            EventType::Payment => {
                payments += 1;
                last_payment = Some(e.ts);
                if !e.amount.is_nan() {
                    amount_paid += e.amount;
                }
            }
            EventType::CouponRedeem => coupons += 1,
            EventType::SubscriptionCancel => cancellations += 1,
            _ => {}
        }
    }

    let (mut enrolled_lessons, mut enrolled_completed) = (0u64, 0u64);
    for c in courses.iter().filter(|c| c.enrolled) {
        if let Some(&lessons) = course_lessons.get(c.course as usize) {
            enrolled_lessons += u64::from(lessons);
            enrolled_completed += u64::from(c.completions.min(lessons));
        }
    }
    let completion_rate = if enrolled_lessons == 0 {
        f64::NAN
    } else {
        enrolled_completed as f64 / enrolled_lessons as f64
    };

    let tenure_ms = t - profile.signup_at;
    let minutes = |seconds: f64| seconds / 60.0;
    FeatureRow {
        numeric: [
            days_since(t, last_login),
            days_since(t, last_activity),
            f64::from(logins_7d),
            f64::from(logins_30d),
            f64::from((active_day_mask & 0x7f).count_ones()),
            f64::from(active_day_mask.count_ones()),
            minutes(watch_s_7d),
            minutes(watch_s_30d),
            minutes(watch_s_7d) - minutes(watch_s_prev_7d),
            courses.iter().filter(|c| c.enrolled).count() as f64,
            f64::from(lessons_completed),
            f64::from(lessons_completed_30d),
            completion_rate,
            f64::from(quiz_attempts_30d),
            ratio(quiz_score_sum_30d, quiz_scored_30d),
            mean_of_last_scores(past, LAST_QUIZZES),
            f64::from(forum_posts_30d),
            f64::from(checkins_30d),
            f64::from(checkin_streak(past, t)),
            days_since(t, last_community),
            f64::from(live_classes_30d),
            ratio(latency_sum, latency_n),
            ratio(stalls_sum, stalls_n),
            f64::from(refund_7d),
            f64::from(refund_30d),
            f64::from(tickets_7d),
            f64::from(tickets_30d),
            f64::from(payments),
            amount_paid,
            days_since(t, last_payment),
            f64::from(coupons),
            f64::from(cancellations),
            days(tenure_ms),
        ],
        categorical: [
            Some(profile.plan.as_str()),
            Some(profile.acquisition_channel),
            profile.device,
            Some(lifecycle_stage(tenure_ms, active_day_mask & 0x7f != 0)),
        ],
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

/// Mean score of the latest `n` quiz attempts that have a score.
fn mean_of_last_scores(past: &[Event], n: usize) -> f64 {
    let (sum, count) = past
        .iter()
        .rev()
        .filter(|e| e.event_type == EventType::QuizAttempt && !e.score.is_nan())
        .take(n)
        .fold((0.0, 0u32), |(s, c), e| (s + e.score, c + 1));
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
