//! The written batch table equals the single-learner path run on each learner's
//! raw events, for many learners and as-of times (read back from the file).

use churn_core::{DAY_MS, Event, EventKind, EventType, LabelDefinition};
use churn_features::SnapshotSpec;
use churn_features::registry::{CATEGORICAL, NUMERIC};
use churn_features::{Profile, SortedEvents, compute};
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
    let summary = write_table(&mut dataset, &plan, &path, &|_| {}).expect("table written");

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
        let expected = compute(&profile, sorted, t, &lessons);
        for (i, feature) in NUMERIC.iter().enumerate() {
            let got = table
                .column(feature.name)
                .unwrap()
                .f64()
                .unwrap()
                .get(row)
                .unwrap();
            let want = expected.numeric[i];
            assert!(
                got.to_bits() == want.to_bits(),
                "{id} at {t}: {} is {got} in the table, {want} for one learner",
                feature.name
            );
        }
        for (i, feature) in CATEGORICAL.iter().enumerate() {
            let column = table.column(feature.name).unwrap().str().unwrap().clone();
            assert_eq!(column.get(row), expected.categorical[i], "{}", feature.name);
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
