//! Synthetic learner populations with known churn drivers and known
//! treatment effects.
//!
//! [`simulate`] generates the four tables of the data contract plus the truth
//! behind them: each learner's latent traits, true churn drivers, and, for
//! learners in the experiment, the true 30-day churn probability under every
//! arm and the drawn outcome. The outcome is realised in the events so that
//! the label definition of `churn-features`, applied at `assigned_at`, gives
//! back exactly the drawn outcome.
//!
//! **Determinism:** every learner draws from its own RNG stream derived from
//! the one seed and its index, and results are collected in learner order, so
//! the output does not depend on the number of threads.

mod learner;
mod params;
mod truth;
pub mod truth_model;

use std::sync::atomic::{AtomicU64, Ordering};

use churn_core::{Assignment, Dataset};
use rayon::prelude::*;

pub use learner::{ExperimentTruth, LearnerTruth, Traits};
pub use params::{AssignmentMode, ParamError, SimParams, ValidSimParams};
pub use truth::{ArmTruth, ExperimentSummary, Truth, TruthError};

/// Identifier of the simulated experiment.
pub const EXPERIMENT_ID: &str = "retention-2026";

/// The generated tables and the truth behind them.
pub struct Simulation {
    /// The four tables, ids resolved.
    pub dataset: Dataset,
    /// What generated them.
    pub truth: Truth,
}

/// Runs the simulation. `progress` is called with the number of learners
/// finished since its last call (from worker threads).
pub fn simulate(params: &ValidSimParams, progress: &(dyn Fn(u64) + Sync)) -> Simulation {
    let raw = params.raw();
    let catalogue = learner::Catalogue::generate(raw.courses, raw.seed);
    let done = AtomicU64::new(0);
    let simulated: Vec<learner::Simulated> = (0..raw.learners as u32)
        .into_par_iter()
        .with_min_len(256)
        .map(|index| {
            let learner = learner::simulate_learner(params, &catalogue, index);
            if done.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
                progress(1024);
            }
            learner
        })
        .collect();
    progress(done.load(Ordering::Relaxed) % 1024);

    let mut dataset = Dataset {
        courses: catalogue.courses,
        ..Dataset::default()
    };
    dataset
        .events
        .reserve(simulated.iter().map(|s| s.events.len()).sum());
    let mut learners_truth = Vec::with_capacity(simulated.len());
    for (index, sim) in simulated.into_iter().enumerate() {
        if let Some(experiment) = &sim.truth.experiment {
            let arm = truth_model::ARMS[experiment.arm];
            dataset.assignments.push(Assignment {
                experiment_id: EXPERIMENT_ID.to_owned(),
                learner: index as u32,
                arm: arm.to_owned(),
                assigned_at: params.assigned_at(),
                propensity: Some(experiment.propensity),
                risk_score: Some(truth::noisy_risk(
                    raw.seed,
                    index as u64,
                    experiment.probabilities[0],
                )),
                cost: Some(truth_model::ARM_COSTS[experiment.arm]),
                churned: None,
            });
        }
        dataset.events.extend_from_slice(&sim.events);
        dataset.learners.push(sim.learner);
        learners_truth.push(sim.truth);
    }
    let truth = Truth::new(params.clone(), learners_truth);
    Simulation { dataset, truth }
}
