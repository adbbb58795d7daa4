//! Point-in-time properties: features at `t` see nothing after `t`, the label
//! at `t` sees nothing up to `t` (under every label definition), and the file
//! order of the events changes nothing. Events include counts and custom types;
//! the features include a feature set's (custom types, course calendar and
//! deadlines, learner attributes).

use churn_core::{DAY_MS, Event, EventKind, EventType, LabelDefinition, NO_COURSE};
use churn_features::label::churned_after;
use churn_features::{
    CourseCalendar, FeatureLayout, FeatureRow, FeatureSet, Profile, SortedEvents, compute,
};
use proptest::prelude::*;

const LESSONS: [u32; 3] = [4, 8, 12];
const SPAN: i64 = 120 * DAY_MS;

fn event() -> impl Strategy<Value = Event> {
    (
        0..SPAN,
        // The known types, then two custom ones (activity and not).
        0..EventType::ALL.len() + 2,
        prop_oneof![Just(NO_COURSE), 0u32..3],
        prop::option::of(0.0..5000.0f64),
        prop::option::of(0.0..=1.0f64),
        prop::option::of(0.0..3.0f64),
        prop_oneof![4 => Just(1u32), 1 => 2u32..6],
    )
        .prop_map(|(ts, kind, course, measure, score, stalls, count)| {
            let kind = match EventType::ALL.get(kind) {
                Some(&known) => EventKind::Known(known),
                None => {
                    let index = (kind - EventType::ALL.len()) as u16;
                    EventKind::Custom {
                        index,
                        activity: index == 0,
                    }
                }
            };
            let mut e = Event::new(ts, 0, kind);
            e.course = course;
            e.count = count;
            let measure = measure.unwrap_or(f64::NAN);
            e.duration_s = measure;
            e.amount = measure;
            e.latency_ms = measure;
            e.score = score.unwrap_or(f64::NAN);
            e.stalls = stalls.map_or(f64::NAN, f64::floor);
            e
        })
}

fn sorted(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by(Event::canonical_cmp);
    events
}

/// Every feature the data can have: both custom types, the course calendar
/// (two courses with ends and starts, one without), deadlines inside the
/// span, and an attribute of each kind.
static LAYOUT: std::sync::LazyLock<(FeatureLayout, usize)> = std::sync::LazyLock::new(|| {
    let attributes = churn_core::LearnerAttributes {
        numeric: vec!["credits".into()],
        categorical: vec!["region".into()],
    };
    let set = FeatureSet::new(
        vec!["alpha_view".into(), "beta_badge".into()],
        attributes.clone(),
    )
    .expect("a valid set")
    .with_calendar(true)
    .with_starts(true)
    .with_deadlines(true);
    let deadline = |course, day, event_type| churn_core::Deadline {
        course,
        due_at: day * DAY_MS,
        event_type,
    };
    let calendar = CourseCalendar {
        ends: vec![Some(90 * DAY_MS), Some(150 * DAY_MS), None],
        starts: vec![Some(0), Some(20 * DAY_MS), None],
        deadlines: vec![
            deadline(0, 30, EventType::QuizAttempt),
            deadline(0, 60, EventType::QuizAttempt),
            deadline(1, 45, EventType::LessonComplete),
            deadline(2, 70, EventType::QuizAttempt),
        ],
    };
    let custom = ["alpha_view".to_owned(), "beta_badge".to_owned()];
    (
        set.layout(&custom, &attributes, &calendar),
        set.numeric_len(),
    )
});

fn features_at(events: &[Event], t: i64) -> FeatureRow<'static> {
    static CATEGORIES: [Option<String>; 1] = [None];
    let profile = Profile {
        signup_at: 0,
        plan: "free",
        acquisition_channel: "ads",
        device: Some("ios"),
        numeric_attributes: &[60.0],
        categorical_attributes: &CATEGORIES,
    };
    let (layout, numeric_len) = &*LAYOUT;
    let row = compute(
        &profile,
        SortedEvents::check(events).expect("sorted"),
        t,
        &LESSONS,
        layout,
    );
    assert_eq!(row.numeric.len(), *numeric_len, "every feature of the set");
    row
}

fn sorted_in_place(events: &mut [Event]) -> Vec<Event> {
    SortedEvents::sort(events).as_slice().to_vec()
}

/// Equal including NaN, bit for bit.
fn same(a: &FeatureRow<'_>, b: &FeatureRow<'_>) -> bool {
    a.categorical == b.categorical
        && a.numeric.len() == b.numeric.len()
        && a.numeric
            .iter()
            .zip(&b.numeric)
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn features_ignore_everything_after_t(
        history in prop::collection::vec(event(), 0..80),
        extra in prop::collection::vec(event(), 0..20),
        t in 0..SPAN,
        keep_mask in any::<u64>(),
    ) {
        let events = sorted(history);
        let before = features_at(&events, t);

        // Remove a random subset of the events after t.
        let removed: Vec<Event> = events
            .iter()
            .enumerate()
            .filter(|(i, e)| e.ts <= t || keep_mask >> (i % 64) & 1 == 1)
            .map(|(_, e)| *e)
            .collect();
        prop_assert!(same(&before, &features_at(&removed, t)));

        // Add events after t (moved past t), change the ones after t.
        let mut added = events.clone();
        added.extend(extra.iter().map(|e| Event { ts: t + 1 + e.ts, ..*e }));
        let changed: Vec<Event> = sorted(added)
            .into_iter()
            .map(|e| if e.ts > t { Event { event_type: EventType::Payment.into(), amount: 1e6, count: 7, ..e } } else { e })
            .collect();
        prop_assert!(same(&before, &features_at(&sorted(changed), t)));
    }

    #[test]
    fn the_file_order_of_events_changes_no_feature(
        history in prop::collection::vec(event(), 0..80),
        ties in prop::collection::vec(event(), 0..40),
        t in 0..SPAN,
        seed in any::<u64>(),
    ) {
        // Many events share timestamps (the ties land on a few instants).
        let mut events = history;
        events.extend(ties.into_iter().map(|e| Event { ts: e.ts % 4 * DAY_MS, ..e }));
        let mut first = events.clone();
        let want = features_at(&sorted_in_place(&mut first), t);
        // A permutation of the same rows, from the seed.
        let mut shuffled = events;
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let got = features_at(&sorted_in_place(&mut shuffled), t);
        prop_assert!(same(&want, &got));
    }

    #[test]
    fn the_label_ignores_everything_up_to_t(
        history in prop::collection::vec(event(), 0..80),
        extra in prop::collection::vec(event(), 0..20),
        t in 0..SPAN,
        horizon_days in 1i64..60,
    ) {
        let h = horizon_days * DAY_MS;
        let events = sorted(history);
        for definition in LabelDefinition::ALL {
            let label = churned_after(definition, &events, t, h);

            let after_only: Vec<Event> = events.iter().copied().filter(|e| e.ts > t).collect();
            prop_assert_eq!(label, churned_after(definition, &after_only, t, h));

            let mut more = events.clone();
            more.extend(extra.iter().map(|e| Event { ts: e.ts % (t + 1), ..*e }));
            prop_assert_eq!(label, churned_after(definition, &sorted(more), t, h));

            let changed: Vec<Event> = events
                .iter()
                .map(|e| if e.ts <= t { Event { event_type: EventType::SubscriptionCancel.into(), ..*e } } else { *e })
                .collect();
            prop_assert_eq!(label, churned_after(definition, &sorted(changed), t, h));
        }
    }
}
