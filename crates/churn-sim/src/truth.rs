//! The truth file: what the simulator knows and a model can only estimate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use churn_core::{Dataset, format_timestamp};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde::Serialize;

use crate::EXPERIMENT_ID;
use crate::learner::{LearnerTruth, stream_seed};
use crate::params::ValidSimParams;
use crate::truth_model::{ARM_COSTS, ARMS, BASE_LOGIT, DRIVER_NAMES};

/// Writing the truth files failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {message}")]
pub struct TruthError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// The truth about one arm of the experiment.
#[derive(Debug, Clone, Serialize)]
pub struct ArmTruth {
    /// Arm name.
    pub arm: String,
    /// Learners assigned to it.
    pub n: usize,
    /// Of those, how many churned (drawn outcome).
    pub churned: usize,
    /// `churned / n`.
    pub realised_rate: f64,
    /// Mean true churn probability of the learners assigned to this arm.
    pub expected_rate: f64,
    /// True effect (DESIGN.md): mean over **all** assigned learners of
    /// `p_arm − p_control`; negative means the arm reduces churn.
    pub true_effect: f64,
    /// Mean `p_arm` over all assigned learners (the churn rate if everyone got it).
    pub rate_if_all: f64,
    /// Cost of one treatment.
    pub cost: f64,
}

/// The truth about the experiment as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentSummary {
    /// Experiment id (as in `assignments`).
    pub experiment_id: String,
    /// Assignment time, RFC 3339.
    pub assigned_at: String,
    /// Outcome horizon in days.
    pub horizon_days: u32,
    /// Learners assigned.
    pub assigned: usize,
    /// Per arm, control first.
    pub arms: Vec<ArmTruth>,
    /// Among assigned learners, how many have each dominant driver at assignment.
    pub dominant_drivers: BTreeMap<String, usize>,
}

/// All the truth of one simulation.
pub struct Truth {
    /// The parameters used.
    pub params: ValidSimParams,
    /// Per learner, in learner order.
    pub learners: Vec<LearnerTruth>,
    /// The experiment.
    pub experiment: ExperimentSummary,
}

/// A risk score as a deployed model might log it: the true control
/// probability blurred on the log-odds scale (its own RNG stream).
pub(crate) fn noisy_risk(seed: u64, learner: u64, p: f64) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(stream_seed(seed ^ 0x005E_ED0F_415C, learner));
    let noise: f64 = rng.sample(StandardNormal);
    let logit = (p / (1.0 - p)).ln() + 0.5 * noise;
    (1e4 / (1.0 + (-logit).exp())).round() / 1e4
}

impl Truth {
    pub(crate) fn new(params: ValidSimParams, learners: Vec<LearnerTruth>) -> Truth {
        let assigned: Vec<_> = learners
            .iter()
            .filter_map(|l| l.experiment.as_ref())
            .collect();
        let n_all = assigned.len().max(1) as f64;
        let arms = ARMS
            .iter()
            .enumerate()
            .map(|(a, name)| {
                let mine: Vec<_> = assigned.iter().filter(|e| e.arm == a).collect();
                let n = mine.len();
                let churned = mine.iter().filter(|e| e.churned).count();
                ArmTruth {
                    arm: (*name).to_owned(),
                    n,
                    churned,
                    realised_rate: churned as f64 / n.max(1) as f64,
                    expected_rate: mine.iter().map(|e| e.probabilities[a]).sum::<f64>()
                        / n.max(1) as f64,
                    true_effect: assigned
                        .iter()
                        .map(|e| e.probabilities[a] - e.probabilities[0])
                        .sum::<f64>()
                        / n_all,
                    rate_if_all: assigned.iter().map(|e| e.probabilities[a]).sum::<f64>() / n_all,
                    cost: ARM_COSTS[a],
                }
            })
            .collect();
        let mut dominant_drivers = BTreeMap::new();
        for e in &assigned {
            *dominant_drivers
                .entry(e.drivers.dominant().to_owned())
                .or_insert(0) += 1;
        }
        let experiment = ExperimentSummary {
            experiment_id: EXPERIMENT_ID.to_owned(),
            assigned_at: format_timestamp(params.assigned_at()),
            horizon_days: params.raw().horizon_days,
            assigned: assigned.len(),
            arms,
            dominant_drivers,
        };
        Truth {
            params,
            learners,
            experiment,
        }
    }

    /// Writes `truth.json` (parameters, the churn model, the experiment's true
    /// effects) and `truth_learners.csv` (one row per learner) into `dir`.
    pub fn write(&self, dir: &Path, dataset: &Dataset) -> Result<(), TruthError> {
        let json_path = dir.join("truth.json");
        let summary = serde_json::json!({
            "generator": concat!("churn-sim ", env!("CARGO_PKG_VERSION")),
            "params": self.params.raw(),
            "data_start": format_timestamp(self.params.raw().start),
            "data_end": format_timestamp(self.params.data_end()),
            "learners": dataset.learners.len(),
            "events": dataset.events.len(),
            "churn_model": {
                "base_logit": BASE_LOGIT,
                "drivers": DRIVER_NAMES,
                "doc": "30-day churn log-odds = base_logit + sum of driver pushes (see churn-sim truth_model.rs); \
                        the daily leave hazard is 1 - (1 - p30)^(1/30); at the experiment the outcome is drawn \
                        from sigmoid(logit - effect(arm))",
            },
            "experiment": self.experiment,
        });
        let text = serde_json::to_string_pretty(&summary).map_err(|e| TruthError {
            path: json_path.clone(),
            message: e.to_string(),
        })?;
        churn_core::write_atomically(&json_path, |w| {
            std::io::Write::write_all(w, text.as_bytes())?;
            std::io::Write::write_all(w, b"\n")
        })
        .map_err(|e| TruthError {
            path: json_path.clone(),
            message: e.to_string(),
        })?;

        let csv_path = dir.join("truth_learners.csv");
        churn_core::write_atomically(&csv_path, |file| self.write_learners_csv(dataset, file))
            .map_err(|e| TruthError {
                path: csv_path.clone(),
                message: e.to_string(),
            })
    }

    /// `truth_learners.csv`: each learner's traits, leaving and experiment truth.
    fn write_learners_csv(
        &self,
        dataset: &Dataset,
        file: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        let csv_error = |e: csv::Error| std::io::Error::other(e.to_string());
        let mut writer = csv::Writer::from_writer(file);
        let mut header: Vec<String> = [
            "learner_id",
            "motivation",
            "skill",
            "price_sensitivity",
            "network_quality",
            "sociability",
            "live_affinity",
            "frailty",
            "left_at",
            "leave_driver",
            "experiment_id",
            "arm",
            "propensity",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        header.extend(ARMS.iter().map(|a| format!("p_{a}")));
        header.push("churned".into());
        header.push("dominant_driver".into());
        header.extend(DRIVER_NAMES.iter().map(|d| format!("driver_{d}")));
        writer.write_record(&header).map_err(csv_error)?;
        for (learner, truth) in dataset.learners.iter().zip(&self.learners) {
            let t = &truth.traits;
            let mut row = vec![
                learner.id.clone(),
                t.motivation.to_string(),
                t.skill.to_string(),
                t.price_sensitivity.to_string(),
                t.network_quality.to_string(),
                t.sociability.to_string(),
                t.live_affinity.to_string(),
                t.frailty.to_string(),
                truth.left_at.map(format_timestamp).unwrap_or_default(),
                truth.leave_driver.unwrap_or_default().to_owned(),
            ];
            match &truth.experiment {
                Some(e) => {
                    row.push(EXPERIMENT_ID.to_owned());
                    row.push(ARMS[e.arm].to_owned());
                    row.push(e.propensity.to_string());
                    row.extend(e.probabilities.iter().map(f64::to_string));
                    row.push(u8::from(e.churned).to_string());
                    row.push(e.drivers.dominant().to_owned());
                    row.extend(e.drivers.values().iter().map(f64::to_string));
                }
                None => row.extend(std::iter::repeat_n(
                    String::new(),
                    3 + ARMS.len() + 2 + DRIVER_NAMES.len(),
                )),
            }
            writer.write_record(&row).map_err(csv_error)?;
        }
        writer.flush()
    }
}
