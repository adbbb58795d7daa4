//! The churn label of DESIGN.md "Features and labels".
//!
//! A training example is a (learner, as-of time `t`) pair. With horizon `h`:
//! - **not an example** when the learner signed up after `t`, had no activity
//!   event in `(t − h, t]`, or cancelled at or before `t` with no activity after
//!   the cancellation (up to `t`);
//! - **unlabelled** when `t + h` is past the end of the data;
//! - otherwise **churned** when there is no activity event in `(t, t + h]` or a
//!   `subscription_cancel` in `(t, t + h]`, and **retained** otherwise.

use churn_core::{Event, EventType};

/// Why a (learner, as-of) pair is not an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotEligible {
    /// The learner signed up after the as-of time.
    NotYetSignedUp,
    /// No activity event in `(t − h, t]`: already gone.
    Inactive,
    /// Cancelled at or before `t` with no activity after the cancellation.
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
    signup_at: i64,
    events: &[Event],
    t: i64,
    horizon_ms: i64,
    data_end: i64,
) -> LabelStatus {
    if let Some(reason) = not_eligible(signup_at, events, t, horizon_ms) {
        return LabelStatus::NotEligible(reason);
    }
    if t.saturating_add(horizon_ms) > data_end {
        return LabelStatus::Unlabelled;
    }
    LabelStatus::Labelled {
        churned: churned_after(events, t, horizon_ms),
    }
}

/// Whether the learner is gone or not yet there at `t`; `None` means "an example".
pub fn not_eligible(
    signup_at: i64,
    events: &[Event],
    t: i64,
    horizon_ms: i64,
) -> Option<NotEligible> {
    if signup_at > t {
        return Some(NotEligible::NotYetSignedUp);
    }
    let past = &events[..events.partition_point(|e| e.ts <= t)];
    let last_activity = past.iter().rev().find(|e| e.event_type.is_activity());
    let last_cancel = past
        .iter()
        .rev()
        .find(|e| e.event_type == EventType::SubscriptionCancel);
    match (last_activity, last_cancel) {
        (None, _) => Some(NotEligible::Inactive),
        (Some(a), _) if a.ts <= t - horizon_ms => Some(NotEligible::Inactive),
        // "No activity after it": an activity at the same instant as the cancel
        // does not count as coming back.
        (Some(a), Some(c)) if a.ts <= c.ts => Some(NotEligible::Cancelled),
        _ => None,
    }
}

/// The outcome part of the label: no activity in `(t, t + h]`, or a
/// `subscription_cancel` in `(t, t + h]`. Reads only events after `t`.
pub fn churned_after(events: &[Event], t: i64, horizon_ms: i64) -> bool {
    let start = events.partition_point(|e| e.ts <= t);
    let end = events.partition_point(|e| e.ts <= t.saturating_add(horizon_ms));
    let window = &events[start..end];
    let active = window.iter().any(|e| e.event_type.is_activity());
    let cancelled = window
        .iter()
        .any(|e| e.event_type == EventType::SubscriptionCancel);
    !active || cancelled
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
            label_status(0, &e, t, H, end),
            LabelStatus::Labelled { churned: false }
        );
        // Only a payment after t: payments are not activity, so churned.
        let e = [ev(35.0, EventType::Login), ev(45.0, EventType::Payment)];
        assert_eq!(
            label_status(0, &e, t, H, end),
            LabelStatus::Labelled { churned: true }
        );
        // Activity exactly at t + h is inside the window; just after it is not.
        let e = [ev(35.0, EventType::Login), ev(70.0, EventType::Login)];
        assert_eq!(label_status(0, &e, t, H, end).churned(), Some(false));
        let e = [ev(35.0, EventType::Login), ev(70.001, EventType::Login)];
        assert_eq!(label_status(0, &e, t, H, end).churned(), Some(true));
        // Activity and a cancellation in the window: churned.
        let e = [
            ev(35.0, EventType::Login),
            ev(41.0, EventType::Login),
            ev(42.0, EventType::SubscriptionCancel),
        ];
        assert_eq!(label_status(0, &e, t, H, end).churned(), Some(true));
        // Activity exactly at t belongs to the features side, not the label.
        let e = [ev(40.0, EventType::Login)];
        assert_eq!(label_status(0, &e, t, H, end).churned(), Some(true));
    }

    #[test]
    fn who_is_not_an_example() {
        let t = 40 * DAY_MS;
        let end = 100 * DAY_MS;
        assert_eq!(
            label_status(41 * DAY_MS, &[], t, H, end),
            LabelStatus::NotEligible(NotEligible::NotYetSignedUp)
        );
        // Last activity exactly at t − h is outside (t − h, t].
        let e = [ev(10.0, EventType::Login)];
        assert_eq!(
            label_status(0, &e, t, H, end),
            LabelStatus::NotEligible(NotEligible::Inactive)
        );
        let e = [ev(10.001, EventType::Login)];
        assert!(label_status(0, &e, t, H, end).is_example());
        // Cancelled before t, no activity since: gone. Activity after the cancel: back.
        let e = [
            ev(30.0, EventType::Login),
            ev(31.0, EventType::SubscriptionCancel),
        ];
        assert_eq!(
            label_status(0, &e, t, H, end),
            LabelStatus::NotEligible(NotEligible::Cancelled)
        );
        let e = [
            ev(30.0, EventType::Login),
            ev(31.0, EventType::SubscriptionCancel),
            ev(32.0, EventType::Login),
        ];
        assert!(label_status(0, &e, t, H, end).is_example());
        // Horizon past the end of the data: unlabelled.
        let e = [ev(35.0, EventType::Login)];
        assert_eq!(
            label_status(0, &e, t, H, 69 * DAY_MS),
            LabelStatus::Unlabelled
        );
        assert!(label_status(0, &e, t, H, 70 * DAY_MS).churned().is_some());
    }
}
