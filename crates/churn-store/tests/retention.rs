//! Retention is exact: on random histories, the features at any as-of time
//! at least `FEATURE_WINDOW_DAYS` after a cutoff are bit for bit the same
//! from the full history as from the summary of the events before the
//! cutoff plus the events after it. The features are `churn-features`' own
//! `compute`, with custom types, course calendars and deadlines in the set.

use churn_core::{Deadline, Event, EventKind, EventType, LearnerAttributes, NO_COURSE};
use churn_features::{CourseCalendar, FeatureSet, Profile, SortedEvents, compute};
use churn_store::ContractEvent;
use churn_store::retention::{FEATURE_WINDOW_DAYS, summarize};
use proptest::prelude::*;

const DAY: i64 = 86_400_000;
const COURSES: [&str; 3] = ["C0", "C1", "C2"];
const CUSTOM: [&str; 2] = ["badge_earned", "note_taken"];

fn kind_of(name: &str) -> EventKind {
    match churn_core::parse_event_type(name) {
        Ok(Ok(known)) => EventKind::Known(known),
        _ => {
            let index = CUSTOM.iter().position(|c| *c == name).unwrap_or(0) as u16;
            EventKind::Custom {
                index,
                activity: index == 0,
            }
        }
    }
}

fn to_event(e: &ContractEvent) -> Event {
    let course = e
        .course_id
        .as_deref()
        .and_then(|c| COURSES.iter().position(|k| *k == c))
        .map_or(NO_COURSE, |i| i as u32);
    e.to_event(course, kind_of(&e.event_type))
}

fn features(events: &[ContractEvent], t: i64) -> Vec<u64> {
    let set = FeatureSet::new(
        CUSTOM.iter().map(|c| c.to_string()).collect(),
        LearnerAttributes::default(),
    )
    .expect("feature set")
    .with_calendar(true)
    .with_starts(true)
    .with_deadlines(true);
    let calendar = CourseCalendar {
        ends: vec![Some(200 * DAY), None, Some(90 * DAY)],
        starts: vec![Some(0), Some(20 * DAY), None],
        deadlines: vec![
            Deadline {
                course: 0,
                due_at: 30 * DAY,
                event_type: EventType::QuizAttempt,
            },
            Deadline {
                course: 0,
                due_at: 60 * DAY,
                event_type: EventType::LessonComplete,
            },
            Deadline {
                course: 2,
                due_at: 150 * DAY,
                event_type: EventType::Checkin,
            },
        ],
    };
    let layout = set.layout(
        &CUSTOM.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        &LearnerAttributes::default(),
        &calendar,
    );
    let profile = Profile {
        signup_at: 0,
        plan: "monthly",
        acquisition_channel: "ads",
        device: None,
        numeric_attributes: &[],
        categorical_attributes: &[],
    };
    let mut rows: Vec<Event> = events.iter().map(to_event).collect();
    let row = compute(
        &profile,
        SortedEvents::sort(&mut rows),
        t,
        &[12, 5, 8],
        &layout,
    );
    let mut bits: Vec<u64> = row.numeric.iter().map(|v| v.to_bits()).collect();
    bits.extend(
        row.categorical
            .iter()
            .map(|c| c.map_or(0, |s| s.len() as u64)),
    );
    bits
}

fn event_strategy() -> impl Strategy<Value = ContractEvent> {
    let names: Vec<&'static str> = EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .chain(CUSTOM)
        .collect();
    (
        0..(180 * 24i64),
        proptest::sample::select(names),
        proptest::option::of(proptest::sample::select(COURSES.to_vec())),
        1u32..4,
        proptest::option::of(0.0..1.0f64),
        proptest::option::of(1.0..50.0f64),
    )
        .prop_map(|(hour, name, course, count, score, amount)| ContractEvent {
            ts: hour * 3_600_000 + 17,
            event_type: name.into(),
            course_id: course.map(str::to_owned),
            count,
            duration_s: 30.0 + (hour % 7) as f64,
            score: score.unwrap_or(f64::NAN),
            amount: amount.unwrap_or(f64::NAN),
            latency_ms: 100.0,
            stalls: (hour % 3) as f64,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn features_after_the_window_are_the_same_from_the_summary(
        events in proptest::collection::vec(event_strategy(), 0..300),
        cutoff_day in 10i64..150,
        cutoff_offset in 0i64..DAY,
        later in 0i64..(40 * DAY),
        streak in proptest::collection::vec(0i64..(20 * 3_600_000), 0..80),
    ) {
        let cutoff = cutoff_day * DAY + cutoff_offset;
        let t = cutoff + FEATURE_WINDOW_DAYS * DAY + later;
        // A daily check-in run back from t, so streaks cross the cutoff.
        let mut events = events;
        events.extend(
            streak
                .iter()
                .enumerate()
                .map(|(k, jitter)| ContractEvent::new(t - k as i64 * DAY - jitter, "checkin")),
        );
        let (old, recent): (Vec<_>, Vec<_>) = events.iter().cloned().partition(|e| e.ts < cutoff);
        let old_rows = old.len();
        let mut compacted = summarize(old);
        prop_assert!(compacted.len() <= old_rows);
        compacted.extend(recent);
        prop_assert_eq!(features(&events, t), features(&compacted, t));
    }
}

/// The check is not empty: a cutoff inside the window changes features.
#[test]
fn a_cutoff_inside_the_window_would_change_the_features() {
    let events: Vec<ContractEvent> = (0..40)
        .map(|d| ContractEvent {
            course_id: Some("C0".into()),
            duration_s: 600.0,
            ..ContractEvent::new(d * DAY + 5, "video_watch")
        })
        .collect();
    let t = 40 * DAY;
    let cutoff = t - 10 * DAY;
    let (old, recent): (Vec<_>, Vec<_>) = events.iter().cloned().partition(|e| e.ts < cutoff);
    let mut compacted = summarize(old);
    compacted.extend(recent);
    assert_ne!(features(&events, t), features(&compacted, t));
}
