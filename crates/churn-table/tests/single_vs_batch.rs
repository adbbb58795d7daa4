//! The written batch table equals the single-learner path run on each learner's
//! raw events, for many learners and as-of times (read back from the file).

use churn_core::{DAY_MS, Event, EventKind, EventType, LabelDefinition, LearnerAttributes};
use churn_features::{FeatureSet, Kind, Profile, SnapshotSpec, SortedEvents, compute};
use churn_sim::{AssignmentMode, SimParams};
use churn_table::write_table;
use polars::prelude::*;

fn simulated() -> churn_core::Dataset {
    let params = SimParams {
        learners: 400,
        days: 100,
        seed: 11,
        start: 1_767_225_600_000, // 2026-01-01
        courses: 12,
        experiment_day: None,
        horizon_days: 30,
        assignment: AssignmentMode::Uniform,
        drift_day: None,
    }
    .check()
    .expect("valid parameters");
    churn_sim::simulate(&params, &|_| {}).dataset
}

/// The simulated data as a platform with daily aggregates and its own event
/// types would have it: each learner's logins of a week are one row with a
/// `count`; every video watch is followed by a custom `page_view` (activity)
/// and every other quiz attempt by a `badge_earned` (not activity).
fn aggregated_with_custom_types() -> churn_core::Dataset {
    let mut dataset = simulated();
    dataset
        .events
        .sort_by(|a, b| a.learner.cmp(&b.learner).then(a.ts.cmp(&b.ts)));
    dataset.custom_event_types = vec!["badge_earned".into(), "page_view".into()];
    let mut events: Vec<Event> = Vec::with_capacity(dataset.events.len() * 2);
    let mut quizzes = 0u32;
    // (learner, week, row) of the login row this week's logins add to.
    let mut open_login: Option<(u32, i64, usize)> = None;
    for e in &dataset.events {
        let week = e.ts.div_euclid(7 * DAY_MS);
        if e.event_type == EventType::Login {
            match open_login {
                Some((learner, w, row)) if learner == e.learner && w == week => {
                    events[row].count += 1;
                    continue;
                }
                _ => open_login = Some((e.learner, week, events.len())),
            }
        }
        events.push(*e);
        if e.event_type == EventType::VideoWatch {
            let kind = EventKind::Custom {
                index: 1,
                activity: true,
            };
            events.push(Event::new(e.ts + 1_000, e.learner, kind));
        }
        if e.event_type == EventType::QuizAttempt {
            quizzes += 1;
            if quizzes.is_multiple_of(2) {
                events.push(Event::new(
                    e.ts,
                    e.learner,
                    EventKind::Custom {
                        index: 0,
                        activity: false,
                    },
                ));
            }
        }
    }
    assert!(
        events.iter().any(|e| e.count > 1),
        "some logins were aggregated"
    );
    dataset.events = events;
    // Deadlines: two per course, met by a quiz attempt in that course.
    let start = dataset.events.iter().map(|e| e.ts).min().unwrap_or(0);
    dataset.deadlines = (0..dataset.courses.len() as u32)
        .flat_map(|course| {
            [20, 55].map(|day| churn_core::Deadline {
                course,
                due_at: start + (day + i64::from(course)) * DAY_MS,
                event_type: EventType::QuizAttempt,
            })
        })
        .collect();
    // Learner attributes: a number (missing for every 7th learner) and a
    // category (missing for every 5th).
    dataset.attributes = LearnerAttributes {
        numeric: vec!["credits".into()],
        categorical: vec!["region".into()],
    };
    for (i, learner) in dataset.learners.iter_mut().enumerate() {
        learner.numeric_attributes = vec![if i % 7 == 0 {
            f64::NAN
        } else {
            (i % 4) as f64 * 30.0
        }];
        learner.categorical_attributes =
            vec![(i % 5 != 0).then(|| ["north", "south", "east"][i % 3].to_owned())];
    }
    dataset
}

#[test]
fn every_row_of_the_file_equals_the_single_learner_path() {
    parity(simulated(), LabelDefinition::Either);
}

#[test]
fn parity_holds_with_counts_custom_types_and_other_labels() {
    parity(aggregated_with_custom_types(), LabelDefinition::Inactivity);
    parity(
        aggregated_with_custom_types(),
        LabelDefinition::Cancellation,
    );
}

fn parity(original: churn_core::Dataset, label: LabelDefinition) {
    let set = FeatureSet::choose(&original, 16).expect("feature set");
    assert_eq!(
        set.custom_types().len(),
        original.custom_event_types.len(),
        "every custom type is given features"
    );
    let mut dataset = original.clone();
    // Interleave learners (as an export ordered by time would), keeping each
    // learner's own order, so the table has to group them.
    dataset.events.sort_by_key(|e| e.ts);
    assert!(!dataset.events.is_sorted_by_key(|e| e.learner));
    // Odd as-of times (not midnight, every 5 days 7 hours) and a 21-day horizon.
    let first_event = original.events.iter().map(|e| e.ts).min().unwrap();
    let spec = SnapshotSpec {
        from: Some(first_event + 25 * DAY_MS + 3_600_123),
        to: None,
        every: 5 * DAY_MS + 7 * 3_600_000,
        horizon: 21 * DAY_MS,
        data_end: None,
        label,
    };
    let plan = spec.resolve(&dataset).expect("plan");
    assert!(plan.times().len() > 10);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("table.parquet");
    let summary =
        write_table(&mut dataset, &plan, set.clone(), &path, &|_| {}).expect("table written");

    let table = ParquetReader::new(std::fs::File::open(&path).expect("open"))
        .finish()
        .expect("read back");
    assert_eq!(table.height(), summary.rows);
    assert!(summary.rows > 1000 && summary.labelled > 0 && summary.labelled < summary.rows);

    let ids = table.column("learner_id").unwrap().str().unwrap().clone();
    let as_of = table
        .column("as_of")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap();
    let as_of = as_of.i64().unwrap().clone();
    let churned = table.column("churned").unwrap().i32().unwrap().clone();
    let lessons: Vec<u32> = original.courses.iter().map(|c| c.lessons).collect();
    let layout = set.layout(
        &original.custom_event_types,
        &original.attributes,
        &churn_features::CourseCalendar::of(&original),
    );
    let features = set.features();
    let numeric: Vec<&str> = features
        .iter()
        .filter(|f| f.kind == Kind::Numeric)
        .map(|f| f.name.as_str())
        .collect();
    let categorical: Vec<&str> = features
        .iter()
        .filter(|f| f.kind == Kind::Categorical)
        .map(|f| f.name.as_str())
        .collect();

    for row in 0..table.height() {
        let id = ids.get(row).unwrap();
        let t = as_of.get(row).unwrap();
        let learner = original.learners.iter().position(|l| l.id == id).unwrap();
        let events: Vec<Event> = original
            .events
            .iter()
            .filter(|e| e.learner as usize == learner)
            .copied()
            .collect();
        let mut raw = events.clone();
        let sorted = SortedEvents::sort(&mut raw);
        let profile = Profile::from(&original.learners[learner]);
        let expected = compute(&profile, sorted, t, &lessons, &layout);
        assert_eq!(expected.numeric.len(), numeric.len());
        // The custom types' generic features, by their formula: occurrences
        // (counts included) in (t − 30 d, t] and days since the last one.
        for (slot, name) in set.custom_types().iter().enumerate() {
            let index = original
                .custom_event_types
                .iter()
                .position(|n| n == name)
                .unwrap() as u16;
            let of_type: Vec<&Event> = events
                .iter()
                .filter(|e| {
                    e.ts <= t
                        && matches!(e.event_type, EventKind::Custom { index: i, .. } if i == index)
                })
                .collect();
            let in_30d: u64 = of_type
                .iter()
                .filter(|e| t - e.ts < 30 * DAY_MS)
                .map(|e| u64::from(e.count))
                .sum();
            let base = churn_features::registry::NUMERIC.len() + 4 * slot;
            assert_eq!(
                expected.numeric[base + 1],
                in_30d as f64,
                "{name}_count_30d"
            );
            let since = of_type
                .iter()
                .map(|e| e.ts)
                .max()
                .map_or(f64::NAN, |last| (t - last) as f64 / DAY_MS as f64);
            assert_eq!(
                expected.numeric[base + 3].to_bits(),
                since.to_bits(),
                "days_since_{name}"
            );
        }
        // The next deadline, by its formula: the earliest due after t among
        // the courses of the learner's events up to t.
        let next = original
            .deadlines
            .iter()
            .filter(|d| {
                d.due_at > t
                    && events
                        .iter()
                        .any(|e| e.ts <= t && e.course() == Some(d.course))
            })
            .map(|d| (d.due_at - t) as f64 / DAY_MS as f64)
            .reduce(f64::min)
            .unwrap_or(f64::NAN);
        if let Some(next_at) = numeric
            .iter()
            .position(|n| *n == churn_features::DAYS_TO_NEXT_DEADLINE)
        {
            assert_eq!(
                expected.numeric[next_at].to_bits(),
                next.to_bits(),
                "days_to_next_deadline"
            );
        }
        let learner_row = &original.learners[learner];
        for (k, value) in learner_row.numeric_attributes.iter().enumerate() {
            let at = numeric.len() - learner_row.numeric_attributes.len() + k;
            assert_eq!(expected.numeric[at].to_bits(), value.to_bits());
        }
        for (k, value) in learner_row.categorical_attributes.iter().enumerate() {
            let at = categorical.len() - learner_row.categorical_attributes.len() + k;
            assert_eq!(expected.categorical[at], value.as_deref());
        }
        for (i, name) in numeric.iter().enumerate() {
            let got = table.column(name).unwrap().f64().unwrap().get(row).unwrap();
            let want = expected.numeric[i];
            assert!(
                got.to_bits() == want.to_bits(),
                "{id} at {t}: {name} is {got} in the table, {want} for one learner",
            );
        }
        for (i, name) in categorical.iter().enumerate() {
            let column = table.column(name).unwrap().str().unwrap().clone();
            assert_eq!(column.get(row), expected.categorical[i], "{name}");
        }
        let status = churn_features::label::label_status(
            label,
            profile.signup_at,
            sorted.as_slice(),
            t,
            plan.horizon(),
            plan.data_end(),
        );
        assert!(status.is_example());
        assert_eq!(churned.get(row).map(|c| c == 1), status.churned());
    }
}

#[test]
fn a_plan_is_checked_and_defaults_come_from_the_data() {
    let dataset = simulated();
    let plan = SnapshotSpec::every_14_days().resolve(&dataset).unwrap();
    let last = *plan.times().last().unwrap();
    assert_eq!(last % DAY_MS, 0, "the last as-of time is a midnight");
    assert!(last <= plan.data_end() && plan.data_end() - last < DAY_MS);
    let first_event = dataset.events.iter().map(|e| e.ts).min().unwrap();
    assert!(plan.times()[0] >= first_event + 30 * DAY_MS);
    assert!(plan.times()[0] - 14 * DAY_MS < first_event + 30 * DAY_MS);

    let backwards = SnapshotSpec {
        from: Some(last + DAY_MS),
        to: Some(last),
        ..SnapshotSpec::every_14_days()
    };
    assert!(backwards.resolve(&dataset).is_err());
    assert!(
        SnapshotSpec::every_14_days()
            .resolve(&churn_core::Dataset::default())
            .is_err()
    );
}
