//! The churn labels of DESIGN.md "Features and labels" and "Bring your own data".
//!
//! A training example is a (learner, as-of time `t`) pair. With horizon `h`
//! and a [`LabelDefinition`]:
//! - **not an example** when the learner signed up after `t`; with
//!   `inactivity` or `either`, also when there was no activity event in
//!   `(t − h, t]`; with `cancellation` or `either`, also when the learner
//!   cancelled at or before `t` with no activity after the cancellation (up to
//!   `t`);
//! - **unlabelled** when `t + h` is past the end of the data;
//! - otherwise **churned** when, in `(t, t + h]`, there is no activity event
//!   (`inactivity`), a `subscription_cancel` (`cancellation`), or either
//!   (`either`); **retained** otherwise.

use churn_core::{Event, EventType, LabelDefinition};

/// Why a (learner, as-of) pair is not an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotEligible {
    /// The learner signed up after the as-of time.
    NotYetSignedUp,
    /// No activity event in `(t − h, t]`: already gone (`inactivity`, `either`).
    Inactive,
    /// Cancelled at or before `t` with no activity after the cancellation
    /// (`cancellation`, `either`).
    Cancelled,
    /// Every course the learner had by `t` has ended: finished, not churned.
    Finished,
}

/// The label status of a learner at an as-of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelStatus {
    /// Not a training or prediction example.
    NotEligible(NotEligible),
    /// An example whose horizon runs past the end of the data: kept for
    /// prediction, never used for training or evaluation.
    Unlabelled,
    /// A labelled example.
    Labelled {
        /// Whether the learner churned within the horizon.
        churned: bool,
    },
}

impl LabelStatus {
    /// Whether the pair is an example (labelled or not).
    pub fn is_example(self) -> bool {
        !matches!(self, LabelStatus::NotEligible(_))
    }

    /// The label, when there is one.
    pub fn churned(self) -> Option<bool> {
        match self {
            LabelStatus::Labelled { churned } => Some(churned),
            _ => None,
        }
    }
}

/// Computes the label status of one learner at as-of time `t`, without a
/// course calendar ([`label_status_in_calendar`] with no end).
///
/// `events` are that learner's events sorted by `ts` (ties in any order);
/// `data_end` is the last time the data covers. All times are ms since epoch.
pub fn label_status(
    definition: LabelDefinition,
    signup_at: i64,
    events: &[Event],
    t: i64,
    horizon_ms: i64,
    data_end: i64,
) -> LabelStatus {
    label_status_in_calendar(definition, signup_at, events, t, horizon_ms, data_end, None)
}

/// When the learner is finished as far as known at `t`: the latest end of the
/// courses of the learner's events up to `t`, when there is at least one and
/// every one has an end (`course_ends[c]`, by course index); `None` otherwise
/// (no course, or one without an end: the learner is never finished).
pub fn finished_at(events: &[Event], t: i64, course_ends: &[Option<i64>]) -> Option<i64> {
    let mut latest: Option<i64> = None;
    for e in events.iter().take_while(|e| e.ts <= t) {
        let Some(course) = e.course() else { continue };
        let end = course_ends.get(course as usize).copied().flatten()?;
        latest = Some(latest.map_or(end, |l| l.max(end)));
    }
    latest
}

/// [`label_status`] with the course calendar: a learner `finished` (see
/// [`finished_at`]) at or before `t` is not an example; one who finishes
/// inside the horizon has the horizon cut at the finish for the inactivity
/// part of the label (no activity is expected after a course is over); a
/// cancellation is read over the whole horizon.
pub fn label_status_in_calendar(
    definition: LabelDefinition,
    signup_at: i64,
    events: &[Event],
    t: i64,
    horizon_ms: i64,
    data_end: i64,
    finished: Option<i64>,
) -> LabelStatus {
    if let Some(reason) = not_eligible(definition, signup_at, events, t, horizon_ms) {
        return LabelStatus::NotEligible(reason);
    }
    if finished.is_some_and(|f| f <= t) {
        return LabelStatus::NotEligible(NotEligible::Finished);
    }
    if t.saturating_add(horizon_ms) > data_end {
        return LabelStatus::Unlabelled;
    }
    let churned = match (definition, finished) {
        (LabelDefinition::Cancellation, _) | (_, None) => {
            churned_after(definition, events, t, horizon_ms)
        }
        (_, Some(f)) => {
            let until_finish = (f - t).min(horizon_ms);
            let inactive = churned_after(LabelDefinition::Inactivity, events, t, until_finish);
            inactive
                || (definition == LabelDefinition::Either
                    && churned_after(LabelDefinition::Cancellation, events, t, horizon_ms))
        }
    };
    LabelStatus::Labelled { churned }
}

/// Whether the learner is gone or not yet there at `t`; `None` means "an example".
pub fn not_eligible(
    definition: LabelDefinition,
    signup_at: i64,
    events: &[Event],
    t: i64,
    horizon_ms: i64,
) -> Option<NotEligible> {
    if signup_at > t {
        return Some(NotEligible::NotYetSignedUp);
    }
    let inactive_counts = definition != LabelDefinition::Cancellation;
    let cancel_counts = definition != LabelDefinition::Inactivity;
    let past = &events[..events.partition_point(|e| e.ts <= t)];
    let last_activity = past.iter().rev().find(|e| e.event_type.is_activity());
    let last_cancel = past
        .iter()
        .rev()
        .find(|e| e.event_type == EventType::SubscriptionCancel);
    let inactive = last_activity.is_none_or(|a| a.ts <= t - horizon_ms);
    // "No activity after it": an activity at the same instant as the cancel
    // does not count as coming back.
    let cancelled = last_cancel.is_some_and(|c| last_activity.is_none_or(|a| a.ts <= c.ts));
    if inactive_counts && inactive {
        Some(NotEligible::Inactive)
    } else if cancel_counts && cancelled {
        Some(NotEligible::Cancelled)
    } else {
        None
    }
}

/// The outcome part of the label, in `(t, t + h]`: no activity
/// (`inactivity`), a `subscription_cancel` (`cancellation`), or either.
/// Reads only events after `t`.
pub fn churned_after(
    definition: LabelDefinition,
    events: &[Event],
    t: i64,
    horizon_ms: i64,
) -> bool {
    let start = events.partition_point(|e| e.ts <= t);
    let end = events.partition_point(|e| e.ts <= t.saturating_add(horizon_ms));
    let window = &events[start..end];
    let inactive = || !window.iter().any(|e| e.event_type.is_activity());
    let cancelled = || {
        window
            .iter()
            .any(|e| e.event_type == EventType::SubscriptionCancel)
    };
    match definition {
        LabelDefinition::Inactivity => inactive(),
        LabelDefinition::Cancellation => cancelled(),
        LabelDefinition::Either => inactive() || cancelled(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_core::DAY_MS;

    const H: i64 = 30 * DAY_MS;

    fn ev(day: f64, event_type: EventType) -> Event {
        Event::new((day * DAY_MS as f64) as i64, 0, event_type)
    }

    #[test]
    fn hand_written_histories() {
        let t = 40 * DAY_MS;
        let end = 100 * DAY_MS;
        // Active before t, active after t: retained.
        let e = [ev(35.0, EventType::Login), ev(50.0, EventType::VideoWatch)];
        assert_eq!(
            label_status(LabelDefinition::Either, 0, &e, t, H, end),
            LabelStatus::Labelled { churned: false }
        );
        // Only a payment after t: payments are not activity, so churned.
        let e = [ev(35.0, EventType::Login), ev(45.0, EventType::Payment)];
        assert_eq!(
            label_status(LabelDefinition::Either, 0, &e, t, H, end),
            LabelStatus::Labelled { churned: true }
        );
        // Activity exactly at t + h is inside the window; just after it is not.
        let e = [ev(35.0, EventType::Login), ev(70.0, EventType::Login)];
        assert_eq!(
            label_status(LabelDefinition::Either, 0, &e, t, H, end).churned(),
            Some(false)
        );
        let e = [ev(35.0, EventType::Login), ev(70.001, EventType::Login)];
        assert_eq!(
            label_status(LabelDefinition::Either, 0, &e, t, H, end).churned(),
            Some(true)
        );
        // Activity and a cancellation in the window: churned.
        let e = [
            ev(35.0, EventType::Login),
            ev(41.0, EventType::Login),
            ev(42.0, EventType::SubscriptionCancel),
        ];
        assert_eq!(
            label_status(LabelDefinition::Either, 0, &e, t, H, end).churned(),
            Some(true)
        );
        // Activity exactly at t belongs to the features side, not the label.
        let e = [ev(40.0, EventType::Login)];
        assert_eq!(
            label_status(LabelDefinition::Either, 0, &e, t, H, end).churned(),
            Some(true)
        );
    }

    #[test]
    fn who_is_not_an_example() {
        let t = 40 * DAY_MS;
        let end = 100 * DAY_MS;
        assert_eq!(
            label_status(LabelDefinition::Either, 41 * DAY_MS, &[], t, H, end),
            LabelStatus::NotEligible(NotEligible::NotYetSignedUp)
        );
        // Last activity exactly at t − h is outside (t − h, t].
        let e = [ev(10.0, EventType::Login)];
        assert_eq!(
            label_status(LabelDefinition::Either, 0, &e, t, H, end),
            LabelStatus::NotEligible(NotEligible::Inactive)
        );
        let e = [ev(10.001, EventType::Login)];
        assert!(label_status(LabelDefinition::Either, 0, &e, t, H, end).is_example());
        // Cancelled before t, no activity since: gone. Activity after the cancel: back.
        let e = [
            ev(30.0, EventType::Login),
            ev(31.0, EventType::SubscriptionCancel),
        ];
        assert_eq!(
            label_status(LabelDefinition::Either, 0, &e, t, H, end),
            LabelStatus::NotEligible(NotEligible::Cancelled)
        );
        let e = [
            ev(30.0, EventType::Login),
            ev(31.0, EventType::SubscriptionCancel),
            ev(32.0, EventType::Login),
        ];
        assert!(label_status(LabelDefinition::Either, 0, &e, t, H, end).is_example());
        // Horizon past the end of the data: unlabelled.
        let e = [ev(35.0, EventType::Login)];
        assert_eq!(
            label_status(LabelDefinition::Either, 0, &e, t, H, 69 * DAY_MS),
            LabelStatus::Unlabelled
        );
        assert!(
            label_status(LabelDefinition::Either, 0, &e, t, H, 70 * DAY_MS)
                .churned()
                .is_some()
        );
    }

    #[test]
    fn each_definition_reads_its_own_evidence() {
        use LabelDefinition::{Cancellation, Either, Inactivity};
        let t = 40 * DAY_MS;
        let end = 100 * DAY_MS;
        let status = |d, e: &[Event]| label_status(d, 0, e, t, H, end);
        // Quiet after t, no cancellation: churned only where inactivity counts.
        let quiet = [ev(35.0, EventType::Login)];
        assert_eq!(status(Inactivity, &quiet).churned(), Some(true));
        assert_eq!(status(Either, &quiet).churned(), Some(true));
        assert_eq!(status(Cancellation, &quiet).churned(), Some(false));
        // Active and cancelling after t: churned where cancellation counts.
        let cancels = [
            ev(35.0, EventType::Login),
            ev(45.0, EventType::Login),
            ev(46.0, EventType::SubscriptionCancel),
        ];
        assert_eq!(status(Inactivity, &cancels).churned(), Some(false));
        assert_eq!(status(Cancellation, &cancels).churned(), Some(true));
        assert_eq!(status(Either, &cancels).churned(), Some(true));
        // Silent for the whole horizon before t: gone, unless only a
        // cancellation ends a subscription (a paying customer who is quiet).
        let silent = [ev(5.0, EventType::Login)];
        assert_eq!(
            status(Inactivity, &silent),
            LabelStatus::NotEligible(NotEligible::Inactive)
        );
        assert!(status(Cancellation, &silent).is_example());
        // Cancelled before t: gone, unless only inactivity counts.
        let cancelled = [
            ev(30.0, EventType::Login),
            ev(31.0, EventType::SubscriptionCancel),
        ];
        assert!(status(Inactivity, &cancelled).is_example());
        assert_eq!(
            status(Cancellation, &cancelled),
            LabelStatus::NotEligible(NotEligible::Cancelled)
        );
        // Custom types count as activity exactly when the contract says so.
        let custom = |activity| {
            Event::new(
                45 * DAY_MS,
                0,
                churn_core::EventKind::Custom { index: 0, activity },
            )
        };
        let with = [ev(35.0, EventType::Login), custom(true)];
        let without = [ev(35.0, EventType::Login), custom(false)];
        assert_eq!(status(Inactivity, &with).churned(), Some(false));
        assert_eq!(status(Inactivity, &without).churned(), Some(true));
    }

    #[test]
    fn a_learner_whose_courses_have_all_ended_is_finished_not_churned() {
        use LabelDefinition::{Cancellation, Either, Inactivity};
        let t = 40 * DAY_MS;
        let end = 100 * DAY_MS;
        let in_course = |day: f64, course: u32| {
            let mut e = ev(day, EventType::Login);
            e.course = course;
            e
        };
        // Course 0 ends on day 50, course 1 on day 80, course 2 never.
        let ends = [Some(50 * DAY_MS), Some(80 * DAY_MS), None];
        let one = [in_course(35.0, 0)];
        assert_eq!(finished_at(&one, t, &ends), Some(50 * DAY_MS));
        let two = [in_course(35.0, 0), in_course(36.0, 1)];
        assert_eq!(finished_at(&two, t, &ends), Some(80 * DAY_MS));
        let open_ended = [in_course(35.0, 0), in_course(36.0, 2)];
        assert_eq!(finished_at(&open_ended, t, &ends), None);
        assert_eq!(
            finished_at(&[ev(35.0, EventType::Login)], t, &ends),
            None,
            "no course"
        );
        // A course seen only after t does not count at t.
        let later = [in_course(35.0, 0), in_course(45.0, 2)];
        assert_eq!(finished_at(&later, t, &ends), Some(50 * DAY_MS));

        let status = |d, events: &[Event], at: i64| {
            label_status_in_calendar(d, 0, events, at, H, end, finished_at(events, at, &ends))
        };
        // Active up to the end on day 50, quiet after it: not churned.
        let active_until_end = [in_course(35.0, 0), in_course(49.0, 0)];
        assert_eq!(
            status(Inactivity, &active_until_end, t).churned(),
            Some(false)
        );
        assert_eq!(status(Either, &active_until_end, t).churned(), Some(false));
        // Quiet until the end, active only after it: the horizon is cut at the
        // end, so that is churn; without the calendar it would not be.
        let only_after_end = [in_course(35.0, 0), ev(55.0, EventType::Login)];
        assert_eq!(status(Inactivity, &only_after_end, t).churned(), Some(true));
        assert_eq!(
            label_status(Inactivity, 0, &only_after_end, t, H, end).churned(),
            Some(false)
        );
        let quiet = [in_course(35.0, 0)];
        assert_eq!(status(Inactivity, &quiet, t).churned(), Some(true));
        // A cancellation in the horizon is churn even after the course ends.
        let mut cancels = active_until_end.to_vec();
        cancels.push(ev(55.0, EventType::SubscriptionCancel));
        assert_eq!(status(Cancellation, &cancels, t).churned(), Some(true));
        assert_eq!(status(Either, &cancels, t).churned(), Some(true));
        // After the end: finished, not an example.
        assert_eq!(
            status(Cancellation, &active_until_end, 50 * DAY_MS),
            LabelStatus::NotEligible(NotEligible::Finished)
        );
    }
}
