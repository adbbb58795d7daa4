//! The simulator against its own truth and the label definition.

use churn_core::{Dataset, Event, EventType, LabelDefinition};
use churn_features::label::{LabelStatus, label_status, not_eligible};
use churn_sim::truth_model::ARMS;
use churn_sim::{AssignmentMode, SimParams, Simulation, simulate};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn run(learners: usize, seed: u64, assignment: AssignmentMode) -> Simulation {
    let params = SimParams {
        learners,
        seed,
        assignment,
        ..SimParams::default()
    }
    .check()
    .expect("valid parameters");
    simulate(&params, &|_| {})
}

/// The experiment truth of every assigned learner, in learner order.
fn assigned(sim: &Simulation) -> Vec<&churn_sim::ExperimentTruth> {
    sim.truth
        .learners
        .iter()
        .filter_map(|l| l.experiment.as_ref())
        .collect()
}

/// Each learner's events, in file order.
fn events_by_learner(dataset: &Dataset) -> Vec<Vec<Event>> {
    let mut by = vec![Vec::new(); dataset.learners.len()];
    for e in &dataset.events {
        by[e.learner as usize].push(*e);
    }
    by
}

#[test]
fn drawn_outcomes_are_what_the_label_definition_reads_back() {
    for assignment in [AssignmentMode::Uniform, AssignmentMode::Targeted] {
        let sim = run(4_000, 11, assignment);
        let params = &sim.truth.params;
        let by = events_by_learner(&sim.dataset);
        let mut checked = 0;
        for a in &sim.dataset.assignments {
            let learner = &sim.dataset.learners[a.learner as usize];
            let status = label_status(
                LabelDefinition::Either,
                learner.signup_at,
                &by[a.learner as usize],
                a.assigned_at,
                params.horizon_ms(),
                params.data_end(),
            );
            let truth = sim.truth.learners[a.learner as usize]
                .experiment
                .as_ref()
                .expect("assigned learners have experiment truth");
            assert_eq!(
                status,
                LabelStatus::Labelled {
                    churned: truth.churned
                },
                "learner {} ({assignment:?})",
                learner.id
            );
            assert_eq!(ARMS[truth.arm], a.arm);
            checked += 1;
        }
        assert!(checked > 1_000, "only {checked} assigned learners");
        // Everyone eligible at assignment time is in the experiment, nobody else.
        for (i, learner) in sim.dataset.learners.iter().enumerate() {
            let eligible = not_eligible(
                LabelDefinition::Either,
                learner.signup_at,
                &by[i],
                params.assigned_at(),
                params.horizon_ms(),
            )
            .is_none();
            assert_eq!(
                eligible,
                sim.truth.learners[i].experiment.is_some(),
                "learner {}",
                learner.id
            );
        }
    }
}

#[test]
fn realised_churn_per_arm_agrees_with_the_truth_within_sampling_error() {
    let sim = run(20_000, 5, AssignmentMode::Uniform);
    let assigned = assigned(&sim);
    for (a, arm) in sim.truth.experiment.arms.iter().enumerate() {
        let mine: Vec<_> = assigned.iter().filter(|e| e.arm == a).collect();
        let variance: f64 = mine
            .iter()
            .map(|e| e.probabilities[a] * (1.0 - e.probabilities[a]))
            .sum();
        let expected: f64 = mine.iter().map(|e| e.probabilities[a]).sum();
        let z = (arm.churned as f64 - expected) / variance.sqrt();
        assert!(
            z.abs() < 4.0,
            "arm {}: realised {} vs expected {expected:.1} (z = {z:.2})",
            arm.arm,
            arm.churned
        );
        assert_eq!(arm.n, mine.len());
    }
    // The truth file's effects are what DESIGN.md defines: mean over all
    // assigned learners of p_arm − p_control.
    let n = assigned.len() as f64;
    for (a, arm) in sim.truth.experiment.arms.iter().enumerate() {
        let effect: f64 = assigned
            .iter()
            .map(|e| e.probabilities[a] - e.probabilities[0])
            .sum::<f64>()
            / n;
        assert!((effect - arm.true_effect).abs() < 1e-12);
    }
}

#[test]
fn scale_of_the_signal_is_realistic() {
    let sim = run(20_000, 3, AssignmentMode::Uniform);
    let control = &sim.truth.experiment.arms[0];
    assert!(
        (0.12..=0.32).contains(&control.realised_rate),
        "control churn {:.3} outside the realistic range",
        control.realised_rate
    );
    // Each treatment helps on average; each helps someone and harms someone.
    let assigned = assigned(&sim);
    for (a, arm) in sim.truth.experiment.arms.iter().enumerate().skip(1) {
        assert!(
            arm.true_effect < -0.01,
            "{} should reduce churn: {}",
            arm.arm,
            arm.true_effect
        );
        let helped = assigned
            .iter()
            .filter(|e| e.probabilities[a] < e.probabilities[0] - 0.05)
            .count();
        let harmed = assigned
            .iter()
            .filter(|e| e.probabilities[a] > e.probabilities[0])
            .count();
        assert!(
            helped > 100 && harmed > 10,
            "{}: helped {helped}, harmed {harmed}",
            arm.arm
        );
    }
}

#[test]
fn targeted_assignment_treats_risky_learners_more_and_logs_it() {
    let sim = run(8_000, 9, AssignmentMode::Targeted);
    let assigned = assigned(&sim);
    let mean_risk = |control: bool| {
        let group: Vec<_> = assigned
            .iter()
            .filter(|e| (e.arm == 0) == control)
            .collect();
        group.iter().map(|e| e.probabilities[0]).sum::<f64>() / group.len() as f64
    };
    assert!(
        mean_risk(false) > mean_risk(true) + 0.01,
        "treated learners should be riskier"
    );
    for e in &assigned {
        let control_share = 0.6 - 0.4 * e.probabilities[0];
        let expected = if e.arm == 0 {
            control_share
        } else {
            (1.0 - control_share) / 3.0
        };
        assert!((e.propensity - expected).abs() < 1e-12);
    }
}

fn check_invariants(sim: &Simulation) -> Result<(), TestCaseError> {
    let params = &sim.truth.params;
    let by = events_by_learner(&sim.dataset);
    for (i, learner) in sim.dataset.learners.iter().enumerate() {
        let events = &by[i];
        prop_assert!(learner.signup_at >= params.raw().start);
        for pair in events.windows(2) {
            prop_assert!(
                pair[0].ts <= pair[1].ts,
                "events of {} out of order",
                learner.id
            );
        }
        for e in events {
            prop_assert!(
                e.ts >= learner.signup_at,
                "{} has an event before signup",
                learner.id
            );
            prop_assert!(
                e.ts < params.data_end(),
                "{} has an event after the end",
                learner.id
            );
            if let Some(course) = e.course() {
                prop_assert!((course as usize) < sim.dataset.courses.len());
            }
            match e
                .event_type
                .known()
                .expect("the simulator writes known types")
            {
                EventType::QuizAttempt => prop_assert!((0.0..=1.0).contains(&e.score)),
                EventType::VideoWatch => prop_assert!(e.duration_s > 0.0),
                EventType::LiveClass => {
                    prop_assert!(e.latency_ms > 0.0 && e.stalls >= 0.0 && e.duration_s > 0.0)
                }
                EventType::Payment => prop_assert!(e.amount > 0.0),
                _ => {}
            }
        }
        // After leaving for good, no activity: a learner comes back only
        // through the experiment's drawn "not churned" outcome.
        let truth = &sim.truth.learners[i];
        if let Some(left_at) = truth.left_at {
            let brought_back = truth.experiment.as_ref().is_some_and(|e| !e.churned)
                && left_at < params.assigned_at();
            if !brought_back {
                let active_after = events
                    .iter()
                    .any(|e| e.ts >= left_at && e.event_type.is_activity());
                prop_assert!(!active_after, "{} active after leaving", learner.id);
            }
        }
        // Learners who signed up get a course at once.
        prop_assert_eq!(
            events.first().and_then(|e| e.event_type.known()),
            Some(EventType::CourseEnroll)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/simulation.proptest-regressions"))),
        ..ProptestConfig::default()
    })]
    #[test]
    fn ordering_invariants_hold_for_any_seed(seed in any::<u64>(), targeted in any::<bool>()) {
        let mode = if targeted { AssignmentMode::Targeted } else { AssignmentMode::Uniform };
        check_invariants(&run(300, seed, mode))?;
    }
}

/// A bit-exact fingerprint of a dataset (NaN measures compare by bits).
fn fingerprint(dataset: &Dataset) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    format!(
        "{:?}{:?}{:?}",
        dataset.learners, dataset.courses, dataset.assignments
    )
    .hash(&mut h);
    for e in &dataset.events {
        (e.ts, e.learner, e.course, e.event_type.rank()).hash(&mut h);
        for v in [e.duration_s, e.score, e.amount, e.latency_ms, e.stalls] {
            v.to_bits().hash(&mut h);
        }
    }
    h.finish()
}

#[test]
fn same_seed_same_population_other_seed_another() {
    let a = fingerprint(&run(1_500, 21, AssignmentMode::Uniform).dataset);
    let b = fingerprint(&run(1_500, 21, AssignmentMode::Uniform).dataset);
    let c = fingerprint(&run(1_500, 22, AssignmentMode::Uniform).dataset);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Determinism does not depend on the thread count.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let single = pool.install(|| fingerprint(&run(1_500, 21, AssignmentMode::Uniform).dataset));
    assert_eq!(a, single);
}

#[test]
fn chunks_of_any_size_make_the_same_population_and_truth() {
    let params = SimParams {
        learners: 300,
        seed: 21,
        ..SimParams::default()
    }
    .check()
    .expect("valid parameters");
    let whole = simulate(&params, &|_| {});
    let dir = tempfile::tempdir().expect("tempdir");
    whole
        .truth
        .write(dir.path(), &whole.dataset)
        .expect("truth written");
    let truth_files = |dir: &std::path::Path| {
        ["truth.json", "truth_learners.csv"].map(|f| std::fs::read(dir.join(f)).expect("read"))
    };
    let simulator = churn_sim::Simulator::new(&params);
    assert_eq!(simulator.courses(), &whole.dataset.courses[..]);
    for size in [1, 7, 64, 299, 300, 10_000] {
        let chunks_dir = tempfile::tempdir().expect("tempdir");
        let mut truth = churn_sim::TruthWriter::create(chunks_dir.path(), &params).expect("truth");
        let mut dataset = Dataset::default();
        let mut next = 0;
        for mut chunk in simulator.chunks(size, &|_| {}) {
            assert_eq!(chunk.first_learner, next, "chunks are consecutive");
            assert!(chunk.learners.len() <= size && !chunk.learners.is_empty());
            next += chunk.learners.len() as u32;
            truth
                .write(&chunk.learners, &chunk.truth, chunk.events.len())
                .expect("truth rows");
            dataset.learners.append(&mut chunk.learners);
            dataset.events.append(&mut chunk.events);
            dataset.assignments.append(&mut chunk.assignments);
        }
        assert_eq!(next, 300);
        let summary = truth.finish().expect("truth finished");
        assert_eq!(
            serde_json::to_string(&summary).expect("json"),
            serde_json::to_string(&whole.truth.experiment).expect("json")
        );
        // Debug text: measures are NaN where absent.
        assert_eq!(
            format!("{:?}", dataset.events),
            format!("{:?}", whole.dataset.events),
            "chunks of {size}"
        );
        assert_eq!(dataset.learners, whole.dataset.learners);
        assert_eq!(dataset.assignments, whole.dataset.assignments);
        assert_eq!(truth_files(chunks_dir.path()), truth_files(dir.path()));
    }
}
