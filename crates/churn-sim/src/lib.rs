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

use churn_core::{Assignment, Course, Dataset, Event, Learner};
use rayon::prelude::*;

pub use learner::{ExperimentTruth, LearnerTruth, Traits};
pub use params::{AssignmentMode, ParamError, SimParams, ValidSimParams};
pub use truth::{ArmTruth, ExperimentSummary, Truth, TruthError, TruthWriter};

/// Identifier of the simulated experiment.
pub const EXPERIMENT_ID: &str = "retention-2026";

/// The generated tables and the truth behind them.
pub struct Simulation {
    /// The four tables, ids resolved.
    pub dataset: Dataset,
    /// What generated them.
    pub truth: Truth,
}

/// Learners simulated together by [`Simulator::chunks`]: large enough to
/// keep every core busy, small enough that a chunk's events (~110 per
/// learner over 180 days) stay far below a GiB.
pub const LEARNERS_PER_CHUNK: usize = 8_192;

/// One chunk of consecutive learners with everything they generated.
pub struct Chunk {
    /// Index of the chunk's first learner in the whole population.
    pub first_learner: u32,
    /// The chunk's learners, in index order.
    pub learners: Vec<Learner>,
    /// Their events, learner by learner; `learner` is the global index.
    pub events: Vec<Event>,
    /// The experiment assignments among them, in learner order.
    pub assignments: Vec<Assignment>,
    /// The truth of each learner, in learner order.
    pub truth: Vec<LearnerTruth>,
}

/// A population simulated chunk by chunk, so that memory is bounded by the
/// chunk size and not by the number of learners.
///
/// Chunks cover learners `0..learners` in order, whatever the chunk size;
/// each learner draws from its own stream, so the concatenated chunks are
/// the same for any chunk size and any number of threads.
pub struct Simulator {
    params: ValidSimParams,
    catalogue: learner::Catalogue,
}

impl Simulator {
    /// Draws the course catalogue; learners are simulated by [`Self::chunks`].
    pub fn new(params: &ValidSimParams) -> Simulator {
        let raw = params.raw();
        Simulator {
            catalogue: learner::Catalogue::generate(raw.courses, raw.seed),
            params: params.clone(),
        }
    }

    /// The course catalogue (the same for every chunk).
    pub fn courses(&self) -> &[Course] {
        &self.catalogue.courses
    }

    /// The learners in chunks of `learners_per_chunk` (at least 1), each
    /// simulated on every core. `progress` is called with the number of
    /// learners finished since its last call (from worker threads).
    pub fn chunks<'a>(
        &'a self,
        learners_per_chunk: usize,
        progress: &'a (dyn Fn(u64) + Sync),
    ) -> impl Iterator<Item = Chunk> + 'a {
        let total = self.params.raw().learners as u32;
        let step = learners_per_chunk.clamp(1, u32::MAX as usize) as u32;
        (0..total)
            .step_by(step as usize)
            .map(move |first| self.chunk(first..first.saturating_add(step).min(total), progress))
    }

    fn chunk(&self, learners: std::ops::Range<u32>, progress: &(dyn Fn(u64) + Sync)) -> Chunk {
        let raw = self.params.raw();
        let done = AtomicU64::new(0);
        let first_learner = learners.start;
        let simulated: Vec<learner::Simulated> = learners
            .into_par_iter()
            .with_min_len(256)
            .map(|index| {
                let learner = learner::simulate_learner(&self.params, &self.catalogue, index);
                if done.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
                    progress(1024);
                }
                learner
            })
            .collect();
        progress(done.load(Ordering::Relaxed) % 1024);
        let mut chunk = Chunk {
            first_learner,
            learners: Vec::with_capacity(simulated.len()),
            events: Vec::with_capacity(simulated.iter().map(|s| s.events.len()).sum()),
            assignments: Vec::new(),
            truth: Vec::with_capacity(simulated.len()),
        };
        for (index, sim) in (first_learner..).zip(simulated) {
            if let Some(experiment) = &sim.truth.experiment {
                let arm = truth_model::ARMS[experiment.arm];
                chunk.assignments.push(Assignment {
                    experiment_id: EXPERIMENT_ID.to_owned(),
                    learner: index,
                    arm: arm.to_owned(),
                    assigned_at: self.params.assigned_at(),
                    propensity: Some(experiment.propensity),
                    risk_score: Some(truth::noisy_risk(
                        raw.seed,
                        u64::from(index),
                        experiment.probabilities[0],
                    )),
                    cost: Some(truth_model::ARM_COSTS[experiment.arm]),
                    churned: None,
                });
            }
            chunk.events.extend_from_slice(&sim.events);
            chunk.learners.push(sim.learner);
            chunk.truth.push(sim.truth);
        }
        chunk
    }
}

/// Runs the whole simulation in memory. `progress` is called with the number
/// of learners finished since its last call (from worker threads).
pub fn simulate(params: &ValidSimParams, progress: &(dyn Fn(u64) + Sync)) -> Simulation {
    let simulator = Simulator::new(params);
    let mut dataset = Dataset {
        courses: simulator.courses().to_vec(),
        ..Dataset::default()
    };
    let mut learners_truth = Vec::with_capacity(params.raw().learners);
    for mut chunk in simulator.chunks(LEARNERS_PER_CHUNK, progress) {
        dataset.learners.append(&mut chunk.learners);
        dataset.events.append(&mut chunk.events);
        dataset.assignments.append(&mut chunk.assignments);
        learners_truth.append(&mut chunk.truth);
    }
    let truth = Truth::new(params.clone(), learners_truth);
    Simulation { dataset, truth }
}
