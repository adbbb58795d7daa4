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

/// Computes the label status of one learner at as-of time `t`.
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
    if let Some(reason) = not_eligible(definition, signup_at, events, t, horizon_ms) {
        return LabelStatus::NotEligible(reason);
    }
    if t.saturating_add(horizon_ms) > data_end {
        return LabelStatus::Unlabelled;
    }
    LabelStatus::Labelled {
        churned: churned_after(definition, events, t, horizon_ms),
    }
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
}
