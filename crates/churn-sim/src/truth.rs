//! The truth file: what the simulator knows and a model can only estimate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use churn_core::{Dataset, Learner, format_timestamp};
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

/// The experiment summary, added up learner by learner in learner order
/// (so a chunked run sums in the same order as a whole one).
struct ExperimentTally {
    assigned: usize,
    n: [usize; ARMS.len()],
    churned: [usize; ARMS.len()],
    /// Per arm, the sum of its own probability over its learners.
    own: [f64; ARMS.len()],
    /// Per arm, the sums over every assigned learner of `p_arm` and of
    /// `p_arm - p_control`.
    all: [f64; ARMS.len()],
    effect: [f64; ARMS.len()],
    dominant_drivers: BTreeMap<String, usize>,
}

impl ExperimentTally {
    fn new() -> Self {
        // -0.0, as `Iterator::sum` starts: an empty arm reads the same.
        ExperimentTally {
            assigned: 0,
            n: [0; ARMS.len()],
            churned: [0; ARMS.len()],
            own: [-0.0; ARMS.len()],
            all: [-0.0; ARMS.len()],
            effect: [-0.0; ARMS.len()],
            dominant_drivers: BTreeMap::new(),
        }
    }

    fn add(&mut self, learners: &[LearnerTruth]) {
        for e in learners.iter().filter_map(|l| l.experiment.as_ref()) {
            self.assigned += 1;
            self.n[e.arm] += 1;
            self.churned[e.arm] += usize::from(e.churned);
            self.own[e.arm] += e.probabilities[e.arm];
            for a in 0..ARMS.len() {
                self.all[a] += e.probabilities[a];
                self.effect[a] += e.probabilities[a] - e.probabilities[0];
            }
            *self
                .dominant_drivers
                .entry(e.drivers.dominant().to_owned())
                .or_insert(0) += 1;
        }
    }

    fn summary(self, params: &ValidSimParams) -> ExperimentSummary {
        let n_all = self.assigned.max(1) as f64;
        let arms = ARMS
            .iter()
            .enumerate()
            .map(|(a, name)| ArmTruth {
                arm: (*name).to_owned(),
                n: self.n[a],
                churned: self.churned[a],
                realised_rate: self.churned[a] as f64 / self.n[a].max(1) as f64,
                expected_rate: self.own[a] / self.n[a].max(1) as f64,
                true_effect: self.effect[a] / n_all,
                rate_if_all: self.all[a] / n_all,
                cost: ARM_COSTS[a],
            })
            .collect();
        ExperimentSummary {
            experiment_id: EXPERIMENT_ID.to_owned(),
            assigned_at: format_timestamp(params.assigned_at()),
            horizon_days: params.raw().horizon_days,
            assigned: self.assigned,
            arms,
            dominant_drivers: self.dominant_drivers,
        }
    }
}

impl Truth {
    pub(crate) fn new(params: ValidSimParams, learners: Vec<LearnerTruth>) -> Truth {
        let mut tally = ExperimentTally::new();
        tally.add(&learners);
        Truth {
            experiment: tally.summary(&params),
            params,
            learners,
        }
    }

    /// Writes `truth.json` (parameters, the churn model, the experiment's true
    /// effects) and `truth_learners.csv` (one row per learner) into `dir`.
    pub fn write(&self, dir: &Path, dataset: &Dataset) -> Result<(), TruthError> {
        let mut writer = TruthWriter::create(dir, &self.params)?;
        writer.write(&dataset.learners, &self.learners, dataset.events.len())?;
        writer.finish().map(|_| ())
    }
}

/// The truth files written chunk by chunk: `truth_learners.csv` row by row
/// as chunks come, `truth.json` at [`TruthWriter::finish`] from a running
/// tally. Both appear complete or not at all.
pub struct TruthWriter {
    dir: PathBuf,
    params: ValidSimParams,
    csv_path: PathBuf,
    csv_temp: PathBuf,
    csv: Option<csv::Writer<std::io::BufWriter<std::fs::File>>>,
    tally: ExperimentTally,
    learners: usize,
    events: usize,
}

impl TruthWriter {
    /// Starts the truth files of a simulation with `params` in `dir`.
    pub fn create(dir: &Path, params: &ValidSimParams) -> Result<TruthWriter, TruthError> {
        let csv_path = dir.join("truth_learners.csv");
        let csv_temp = churn_core::temporary_sibling(&csv_path);
        let file = std::fs::File::create(&csv_temp).map_err(|e| TruthError {
            path: csv_path.clone(),
            message: e.to_string(),
        })?;
        let mut writer = TruthWriter {
            dir: dir.to_owned(),
            params: params.clone(),
            csv: Some(csv::Writer::from_writer(std::io::BufWriter::new(file))),
            csv_path,
            csv_temp,
            tally: ExperimentTally::new(),
            learners: 0,
            events: 0,
        };
        let header = truth_csv_header();
        writer.csv_result(|csv| csv.write_record(&header))?;
        Ok(writer)
    }

    fn csv_result(
        &mut self,
        write: impl FnOnce(&mut csv::Writer<std::io::BufWriter<std::fs::File>>) -> csv::Result<()>,
    ) -> Result<(), TruthError> {
        let path = &self.csv_path;
        let csv = self.csv.as_mut().ok_or_else(|| TruthError {
            path: path.clone(),
            message: "already finished".into(),
        })?;
        write(csv).map_err(|e| TruthError {
            path: path.clone(),
            message: e.to_string(),
        })
    }

    /// Adds consecutive learners (with their truth, in the same order) and
    /// the number of events they generated.
    pub fn write(
        &mut self,
        learners: &[Learner],
        truth: &[LearnerTruth],
        events: usize,
    ) -> Result<(), TruthError> {
        self.tally.add(truth);
        self.learners += learners.len();
        self.events += events;
        self.csv_result(|csv| {
            for (learner, truth) in learners.iter().zip(truth) {
                csv.write_record(truth_csv_row(learner, truth))?;
            }
            Ok(())
        })
    }

    /// Publishes `truth_learners.csv` and writes `truth.json`; returns the
    /// experiment's summary.
    pub fn finish(mut self) -> Result<ExperimentSummary, TruthError> {
        let csv_error = |message: String| TruthError {
            path: self.csv_path.clone(),
            message,
        };
        let csv = self
            .csv
            .take()
            .ok_or_else(|| csv_error("already finished".into()))?;
        let mut file = csv
            .into_inner()
            .map_err(|e| csv_error(e.error().to_string()))?;
        std::io::Write::flush(&mut file).map_err(|e| csv_error(e.to_string()))?;
        drop(file);
        churn_core::commit_file(&self.csv_temp, &self.csv_path)
            .map_err(|e| csv_error(e.to_string()))?;

        let experiment =
            std::mem::replace(&mut self.tally, ExperimentTally::new()).summary(&self.params);
        let json_path = self.dir.join("truth.json");
        let summary = serde_json::json!({
            "generator": concat!("churn-sim ", env!("CARGO_PKG_VERSION")),
            "params": self.params.raw(),
            "data_start": format_timestamp(self.params.raw().start),
            "data_end": format_timestamp(self.params.data_end()),
            "learners": self.learners,
            "events": self.events,
            "churn_model": {
                "base_logit": BASE_LOGIT,
                "drivers": DRIVER_NAMES,
                "doc": "30-day churn log-odds = base_logit + sum of driver pushes (see churn-sim truth_model.rs); \
                        the daily leave hazard is 1 - (1 - p30)^(1/30); at the experiment the outcome is drawn \
                        from sigmoid(logit - effect(arm))",
            },
            "experiment": experiment,
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
        Ok(experiment)
    }
}

impl Drop for TruthWriter {
    fn drop(&mut self) {
        if self.csv.is_some() {
            let _ = std::fs::remove_file(&self.csv_temp);
        }
    }
}

/// The columns of `truth_learners.csv`.
fn truth_csv_header() -> Vec<String> {
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
    header
}

/// One learner's row of `truth_learners.csv`: traits, leaving, experiment truth.
fn truth_csv_row(learner: &Learner, truth: &LearnerTruth) -> Vec<String> {
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
    row
}
