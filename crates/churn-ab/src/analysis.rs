//! The whole readout of one experiment, as written to `ab.json`: per-arm
//! churn and the effects against control (with the sample-ratio check that
//! fits how learners were assigned), CUPED, effects by risk decile, uplift
//! models with Qini/AUUC, and the value of each targeting policy with a
//! recommendation, optionally exported for `churn serve --policy`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use churn_core::{DAY_MS, format_timestamp};
use churn_features::FeatureRow;
use churn_model::{Input, Policy};
use serde::Serialize;

use crate::AbError;
use crate::experiment::Experiment;
use crate::policy_value::{Bootstrap, Candidate, Economics, Logged, PolicyComparison};
use crate::readout::{Decile, Readout};
use crate::stats::Cuped;
use crate::uplift::{Assigned, Curve, PerArmModels, Scored};

macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err(AbError::Invalid(format!($($arg)*)))
    };
}

/// What the readout is asked for, beyond the experiment itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The label horizon (ms).
    pub horizon: i64,
    /// The planned split as `ARM=SHARE` items (empty: constant logged
    /// propensities, else equal shares).
    pub allocation: Vec<String>,
    /// The cost of each arm's intervention as `ARM=COST` items (unnamed arms:
    /// the mean logged cost, else 0 with a note).
    pub costs: Vec<String>,
    /// A numeric feature to adjust the comparisons by (CUPED).
    pub cuped: Option<String>,
    /// The value of a retained learner, in the costs' unit.
    pub learner_value: f64,
    /// Skip the uplift models and the policy comparison.
    pub no_uplift: bool,
    pub seed: u64,
    /// Bootstrap resamples for the policy values.
    pub resamples: usize,
    /// Where to write the recommended policy, if anywhere.
    pub export_policy: Option<PathBuf>,
    /// The time the exported policy is stamped with (ms).
    pub now_ms: i64,
}

/// Uplift of one treated arm against control, from cross-fitted models.
#[derive(Debug, Serialize)]
pub struct ArmUplift {
    pub arm: String,
    pub learners: usize,
    pub qini_coefficient: f64,
    pub auuc: f64,
    /// Observed churn reduction among the top 10% / 30% by predicted uplift.
    pub uplift_at_10: f64,
    pub uplift_at_30: f64,
    /// Mean predicted churn reduction.
    pub mean_predicted: f64,
    pub qini: Curve,
}

/// A CUPED-adjusted comparison.
#[derive(Debug, Serialize)]
pub struct CupedComparison {
    pub arm: String,
    pub difference: f64,
    pub interval: (f64, f64),
    pub p_value: f64,
    pub theta: f64,
    pub variance_reduction: f64,
}

impl CupedComparison {
    fn new(arm: &str, c: Cuped) -> Self {
        CupedComparison {
            arm: arm.to_owned(),
            difference: c.difference,
            interval: (c.interval.low, c.interval.high),
            p_value: c.p_value,
            theta: c.theta,
            variance_reduction: c.variance_reduction,
        }
    }
}

/// Everything `churn ab` found, as written to ab.json.
#[derive(Serialize)]
pub struct Analysis {
    pub experiment: String,
    pub assigned_at: Vec<String>,
    pub assigned: usize,
    pub analysed: usize,
    pub excluded: BTreeMap<&'static str, usize>,
    pub horizon_days: i64,
    pub propensities_vary: bool,
    pub readout: Readout,
    pub cuped: Option<(String, Vec<CupedComparison>)>,
    /// What ranks the deciles and the top-k% by risk policies.
    pub risk_source: Option<String>,
    pub by_risk_decile: Option<Vec<Decile>>,
    pub uplift: Vec<ArmUplift>,
    pub learner_value: f64,
    pub costs: BTreeMap<String, f64>,
    pub policies: Option<PolicyComparison>,
    pub notes: Vec<String>,
}

/// `ARM=VALUE` items into a value per arm name, refusing unknown arms.
fn per_arm(
    items: &[String],
    flag: &str,
    names: &[String],
    positive: bool,
) -> Result<HashMap<String, f64>, AbError> {
    let mut out = HashMap::new();
    for item in items {
        let Some((arm, value)) = item.split_once('=') else {
            invalid!("{flag} {item:?}: expected ARM=NUMBER");
        };
        let value: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && if positive { *v > 0.0 } else { *v >= 0.0 })
            .ok_or_else(|| {
                AbError::Invalid(format!(
                    "{flag} {item:?}: the number must be {}",
                    if positive { "positive" } else { "non-negative" }
                ))
            })?;
        if !names.iter().any(|n| n == arm) {
            invalid!(
                "{flag} {item:?}: no arm {arm:?} (arms: {})",
                names.join(", ")
            );
        }
        out.insert(arm.to_owned(), value);
    }
    Ok(out)
}

impl Options {
    /// Refuses what no experiment could make sense of (a negative or
    /// non-finite learner value, a horizon that is not positive). Arm names
    /// in the `ARM=…` items are checked against the experiment by [`analyse`].
    pub fn check(&self) -> Result<(), AbError> {
        if !(self.learner_value.is_finite() && self.learner_value >= 0.0) {
            invalid!(
                "--learner-value {}: must be a non-negative number",
                self.learner_value
            );
        }
        if self.horizon <= 0 {
            invalid!("--horizon must be positive");
        }
        Ok(())
    }
}

/// The whole readout of `experiment`. `model` (when given) ranks learners
/// by risk for the deciles and the top-k% policies and adds the playbook as
/// a candidate policy; `progress(done, total)` hears of the uplift models'
/// fits.
pub fn analyse(
    experiment: &Experiment<'_>,
    options: &Options,
    model: Option<&churn_model::artifact::Artifact>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Analysis, AbError> {
    options.check()?;
    let args = options;
    let horizon = options.horizon;
    let names = &experiment.names;
    let units = &experiment.units;
    let arms = names.len();
    let mut notes = Vec::new();
    let mut outcomes = vec![(0u64, 0u64); arms];
    for u in units {
        outcomes[u.arm].0 += 1;
        outcomes[u.arm].1 += u64::from(u.churned);
    }

    // The planned split: --allocation, else constant logged propensities, else equal.
    let logged: Vec<Vec<f64>> = (0..arms)
        .map(|a| {
            units
                .iter()
                .filter(|u| u.arm == a)
                .filter_map(|u| u.propensity)
                .collect()
        })
        .collect();
    let propensities_vary = logged.iter().any(|p| p.iter().any(|&q| q != p[0]));
    let planned: Vec<f64> = if args.allocation.is_empty() {
        logged
            .iter()
            .map(|p| match p.first() {
                Some(&first) if p.iter().all(|&q| q == first) => first,
                _ => 1.0,
            })
            .collect()
    } else {
        let shares = per_arm(&args.allocation, "--allocation", names, true)?;
        names
            .iter()
            .map(|n| {
                shares.get(n).copied().ok_or_else(|| {
                    AbError::Invalid(format!("--allocation: no share for arm {n:?}"))
                })
            })
            .collect::<Result<_, _>>()?
    };
    if propensities_vary && args.allocation.is_empty() {
        notes.push("propensities vary by learner (targeted assignment): the per-arm rates compare different populations; the policy values below weight by the logged propensities, and so does the sample-ratio check.".into());
    }
    let mut readout = crate::readout::readout(names, &outcomes, &names[0], &planned, 0.05)?;
    if propensities_vary && args.allocation.is_empty() {
        let logged: Option<Vec<f64>> = units.iter().map(|u| u.propensity).collect();
        if let Some(propensity) = logged {
            let arm: Vec<usize> = units.iter().map(|u| u.arm).collect();
            readout.sample_ratio =
                crate::readout::SampleRatio::from_propensities(&arm, &propensity, arms)?;
        }
    }

    let cuped = match &args.cuped {
        Some(feature) => Some((feature.clone(), cuped(experiment, feature)?)),
        None => None,
    };

    // Risk: the model's, else the logged score.
    let (risk, risk_source): (Option<Vec<f64>>, Option<String>) = match model {
        Some(artifact) => {
            let risk = units
                .iter()
                .map(|u| artifact.model.probability(&Input::from(&u.features)))
                .collect::<Result<Vec<f64>, _>>()?;
            (
                Some(risk),
                Some(format!("{} at assignment", artifact.card.label())),
            )
        }
        None if units.iter().all(|u| u.risk_score.is_some()) => (
            Some(units.iter().filter_map(|u| u.risk_score).collect()),
            Some("the risk_score logged at assignment".into()),
        ),
        None => (None, None),
    };
    let by_risk_decile = match &risk {
        Some(risk) => {
            let learners: Vec<(usize, bool, f64)> = units
                .iter()
                .zip(risk)
                .map(|(u, &r)| (u.arm, u.churned, r))
                .collect();
            Some(crate::readout::by_risk_decile(names, 0, &learners, 0.05)?)
        }
        None => {
            notes.push("no risk score: give --model (or log risk_score at assignment) for effects by risk decile and the top-k% by risk policies".into());
            None
        }
    };

    // Economics.
    let flagged = per_arm(&args.costs, "--cost", names, false)?;
    let costs: Vec<f64> = (0..arms)
        .map(|a| {
            if let Some(&c) = flagged.get(&names[a]) {
                return c;
            }
            let logged: Vec<f64> = units
                .iter()
                .filter(|u| u.arm == a)
                .filter_map(|u| u.cost)
                .collect();
            if logged.is_empty() {
                if a != 0 {
                    notes.push(format!(
                        "no cost known for {}: counted as 0 (give --cost {}=C)",
                        names[a], names[a]
                    ));
                }
                0.0
            } else {
                logged.iter().sum::<f64>() / logged.len() as f64
            }
        })
        .collect();
    let economics = Economics {
        learner_value: args.learner_value,
        costs,
    };

    let (uplift, policies) = if args.no_uplift {
        (Vec::new(), None)
    } else {
        uplift_and_policies(
            progress,
            args,
            experiment,
            model,
            risk.as_deref(),
            &planned,
            &economics,
            &mut notes,
        )?
    };

    Ok(Analysis {
        experiment: experiment.id.clone(),
        assigned_at: experiment
            .assigned_at
            .iter()
            .map(|&t| format_timestamp(t))
            .collect(),
        assigned: experiment.assigned,
        analysed: units.len(),
        excluded: BTreeMap::from([
            ("already_gone", experiment.already_gone),
            ("horizon_past_data", experiment.horizon_past_data),
        ]),
        horizon_days: horizon / DAY_MS,
        propensities_vary,
        readout,
        cuped,
        risk_source,
        by_risk_decile,
        uplift,
        learner_value: economics.learner_value,
        costs: names
            .iter()
            .cloned()
            .zip(economics.costs.iter().copied())
            .collect(),
        policies,
        notes,
    })
}

fn cuped(experiment: &Experiment<'_>, feature: &str) -> Result<Vec<CupedComparison>, AbError> {
    let covariate: Vec<f64> = experiment
        .units
        .iter()
        .map(|u| {
            u.features.number(feature).ok_or_else(|| {
                AbError::Invalid(format!(
                    "--cuped {feature:?}: not a numeric feature (see churn features --list)"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if let Some(missing) = covariate.iter().position(|x| !x.is_finite()) {
        invalid!(
            "--cuped {feature:?}: missing for {} learners (first: row {missing}); choose a covariate every learner has",
            covariate.iter().filter(|x| !x.is_finite()).count()
        );
    }
    let column = |arm: usize| -> (Vec<f64>, Vec<f64>) {
        experiment
            .units
            .iter()
            .zip(&covariate)
            .filter(|(u, _)| u.arm == arm)
            .map(|(u, &x)| (f64::from(u8::from(u.churned)), x))
            .unzip()
    };
    let control = column(0);
    (1..experiment.names.len())
        .map(|a| {
            let treated = column(a);
            let c = crate::stats::cuped((&treated.0, &treated.1), (&control.0, &control.1), 0.05)
                .map_err(|e| {
                AbError::Invalid(format!("CUPED for {}: {e}", experiment.names[a]))
            })?;
            Ok(CupedComparison::new(&experiment.names[a], c))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn uplift_and_policies(
    progress: &mut dyn FnMut(u64, u64),
    args: &Options,
    experiment: &Experiment<'_>,
    model: Option<&churn_model::artifact::Artifact>,
    risk: Option<&[f64]>,
    planned: &[f64],
    economics: &Economics,
    notes: &mut Vec<String>,
) -> Result<(Vec<ArmUplift>, Option<PolicyComparison>), AbError> {
    let names = &experiment.names;
    let units = &experiment.units;
    let arms = names.len();
    let features: Vec<FeatureRow<'_>> = units.iter().map(|u| u.features.clone()).collect();
    let design = crate::design::Design::new(&features)?;
    let arm: Vec<usize> = units.iter().map(|u| u.arm).collect();
    let churned: Vec<bool> = units.iter().map(|u| u.churned).collect();
    let per_arm = PerArmModels::for_experiments(args.seed)?;
    let total = (per_arm.folds * arms) as u64;
    let outcome = per_arm.cross_fit(
        &design.schema.gbdt_schema(),
        &Assigned {
            rows: &design.rows,
            arm: &arm,
            churned: &churned,
        },
        arms,
        &mut |done| progress(done as u64, total),
    )?;

    let mut uplift = Vec::new();
    for a in 1..arms {
        let samples: Vec<Scored> = units
            .iter()
            .enumerate()
            .filter(|(_, u)| u.arm == a || u.arm == 0)
            .map(|(i, u)| Scored {
                uplift: outcome[i * arms] - outcome[i * arms + a],
                treated: u.arm == a,
                retained: !u.churned,
            })
            .collect();
        uplift.push(ArmUplift {
            arm: names[a].clone(),
            learners: samples.len(),
            qini_coefficient: crate::uplift::qini_coefficient(&samples)?,
            auuc: crate::uplift::auuc(&samples)?,
            uplift_at_10: crate::uplift::uplift_at_k(&samples, 0.1, false)?,
            uplift_at_30: crate::uplift::uplift_at_k(&samples, 0.3, false)?,
            mean_predicted: samples.iter().map(|s| s.uplift).sum::<f64>() / samples.len() as f64,
            qini: crate::uplift::qini_curve(&samples)?,
        });
    }

    // The log: logged propensities, else the planned share of the arm.
    let total: f64 = planned.iter().sum();
    let log: Vec<Logged> = units
        .iter()
        .map(|u| Logged {
            arm: u.arm,
            propensity: u.propensity.unwrap_or(planned[u.arm] / total),
            churned: u.churned,
        })
        .collect();
    let mut candidates = crate::targeting::candidates(names, risk, &outcome, economics)?;
    if let Some(artifact) = model {
        candidates.push(playbook_candidate(artifact, experiment, notes)?);
    }
    let comparison = crate::policy_value::compare(
        &log,
        &candidates,
        arms,
        &outcome,
        economics,
        Bootstrap {
            alpha: 0.05,
            resamples: args.resamples,
            seed: args.seed,
        },
    )?;
    if let Some(dir) = &args.export_policy {
        let learners = Assigned {
            rows: &design.rows,
            arm: &arm,
            churned: &churned,
        };
        let exported = Export {
            experiment,
            design: &design,
            learners: &learners,
            per_arm: &per_arm,
            economics,
            comparison: &comparison,
            candidates: &candidates,
        };
        let path = exported.write(dir, args.now_ms)?;
        notes.push(format!(
            "exported the recommended policy to {} (serve it with churn serve --policy {})",
            path.display(),
            path.display()
        ));
    }
    Ok((uplift, Some(comparison)))
}

/// What `--export-policy` needs to write the recommended policy.
struct Export<'a, 'd> {
    experiment: &'a Experiment<'d>,
    design: &'a crate::design::Design,
    learners: &'a Assigned<'a>,
    per_arm: &'a PerArmModels,
    economics: &'a Economics,
    comparison: &'a PolicyComparison,
    candidates: &'a [Candidate],
}

impl Export<'_, '_> {
    fn write(&self, dir: &std::path::Path, now_ms: i64) -> Result<std::path::PathBuf, AbError> {
        use churn_model::uplift_policy::{PolicyCard, Rule};
        let chosen = self.comparison.recommended.ok_or_else(|| {
            AbError::Invalid("no policy could be valued: nothing to export".into())
        })?;
        let value = &self.comparison.values[chosen];
        // Value 0 is treat_none; candidate k is value k + 1.
        let rule = match chosen {
            0 => Rule::Nobody,
            k => self.candidates[k - 1].rule.clone().ok_or_else(|| {
                AbError::Invalid(format!(
                    "the recommended policy is {}: it is not an exportable rule (serve the playbook instead)",
                    value.name
                ))
            })?,
        };
        let arms = self.experiment.names.len();
        let (features, models) = if matches!(rule, Rule::BestNetUplift { .. }) {
            // Final per-arm models on every learner of the arm.
            let schema = self.design.schema.gbdt_schema();
            let models = (0..arms)
                .map(|a| {
                    let rows: Vec<usize> = (0..self.learners.arm.len())
                        .filter(|&i| self.learners.arm[i] == a)
                        .collect();
                    self.per_arm.fit_arm(
                        &schema,
                        self.learners,
                        &rows,
                        self.per_arm.seed ^ (a as u64 + 1),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            (self.design.schema.features.clone(), models)
        } else {
            (Vec::new(), Vec::new())
        };
        let card = PolicyCard {
            format_version: 0,
            name: format!("{}-policy", self.experiment.id),
            version: churn_model::artifact::version_stamp(now_ms),
            source: serde_json::json!({
                "experiment": self.experiment.id,
                "assigned_at": self.experiment.assigned_at.iter().map(|&t| format_timestamp(t)).collect::<Vec<_>>(),
                "candidate": value.name,
                "net_value_per_learner_dr": value.net_value.dr,
                "churn_dr": value.churn.dr,
                "treated_share": value.treated_share,
            }),
            arms: self.experiment.names.clone(),
            costs: self.economics.costs.clone(),
            learner_value: self.economics.learner_value,
            rule,
            features,
            sha256: String::new(),
        };
        Ok(churn_model::uplift_policy::save(dir, card, models)?)
    }
}

/// The playbook's suggestion for each learner, as an arm (actions the
/// experiment did not test count as no intervention, and are noted).
fn playbook_candidate(
    artifact: &churn_model::artifact::Artifact,
    experiment: &Experiment<'_>,
    notes: &mut Vec<String>,
) -> Result<Candidate, AbError> {
    let playbook = churn_model::playbook::load(None, artifact.model.schema())?;
    let mut untested: BTreeMap<String, usize> = BTreeMap::new();
    let mut choices = Vec::with_capacity(experiment.units.len());
    for u in &experiment.units {
        let answer = churn_model::answer(
            &artifact.model,
            &playbook as &dyn Policy,
            playbook.bands(),
            &Input::from(&u.features),
            1,
        )?;
        let action = answer.suggested_action.action;
        match experiment.names.iter().position(|n| *n == action) {
            Some(a) => choices.push(a),
            None => {
                if action != churn_model::policy::NO_ACTION {
                    *untested.entry(action).or_default() += 1;
                }
                choices.push(0);
            }
        }
    }
    notes.push(format!(
        "the playbook policy: the default playbook applied to {}'s scores at assignment",
        artifact.card.label()
    ));
    if !untested.is_empty() {
        notes.push(format!(
            "the playbook suggests actions this experiment did not test, counted as no intervention: {}",
            untested
                .iter()
                .map(|(a, n)| format!("{a} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Candidate {
        name: "playbook".into(),
        choices,
        rule: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{Choice, select};
    use churn_core::LabelDefinition;

    fn options() -> Options {
        Options {
            horizon: 30 * DAY_MS,
            allocation: Vec::new(),
            costs: Vec::new(),
            cuped: None,
            learner_value: 100.0,
            no_uplift: true,
            seed: 7,
            resamples: 50,
            export_policy: None,
            now_ms: 0,
        }
    }

    #[test]
    fn per_arm_items_are_checked_against_the_arms() {
        let arms = ["control".to_owned(), "coupon".to_owned()];
        let parsed = per_arm(&["coupon=2.5".into()], "--cost", &arms, false).expect("parses");
        assert_eq!(parsed["coupon"], 2.5);
        for (item, positive, says) in [
            ("coupon", false, "expected ARM=NUMBER"),
            ("coupon=-1", false, "non-negative"),
            ("coupon=0", true, "positive"),
            ("coupon=x", false, "non-negative"),
            ("push=1", false, "no arm \"push\" (arms: control, coupon)"),
        ] {
            let err = per_arm(&[item.into()], "--cost", &arms, positive)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(says), "{item}: {err}");
        }
    }

    #[test]
    fn options_refuse_what_no_experiment_could_use() {
        assert!(options().check().is_ok());
        let mut bad = options();
        bad.learner_value = -1.0;
        assert!(bad.check().is_err());
        bad.learner_value = f64::NAN;
        assert!(bad.check().is_err());
        let mut bad = options();
        bad.horizon = 0;
        assert!(bad.check().is_err());
    }

    /// A simulated experiment read end to end: the readout has every arm with
    /// the simulator's own counts, and both summaries name every arm.
    #[test]
    fn a_simulated_experiment_reads_back_as_drawn_and_is_summarised() {
        let params = churn_sim::SimParams {
            learners: 1500,
            days: 120,
            seed: 3,
            ..churn_sim::SimParams::default()
        }
        .check()
        .expect("valid");
        let mut simulation = churn_sim::simulate(&params, &|_| {});
        let truth = simulation.truth.experiment.clone();
        let experiment = select(
            &mut simulation.dataset,
            &Choice {
                experiment: None,
                control: "control".into(),
            },
            LabelDefinition::Either,
            30 * DAY_MS,
        )
        .expect("the experiment");
        let mut options = options();
        options.costs = vec!["recall_coupon=5".into()];
        let analysis = analyse(&experiment, &options, None, &mut |_, _| {}).expect("analysed");
        for arm in &truth.arms {
            let ours = analysis
                .readout
                .arms
                .iter()
                .find(|a| a.arm == arm.arm)
                .expect("every arm");
            assert_eq!(
                (ours.n, ours.churned),
                (arm.n as u64, arm.churned as u64),
                "{}",
                arm.arm
            );
        }
        assert_eq!(analysis.costs["recall_coupon"], 5.0);
        // No model given: the deciles rank by the risk score the simulator logged.
        assert_eq!(
            analysis.risk_source.as_deref(),
            Some("the risk_score logged at assignment")
        );
        assert_eq!(analysis.by_risk_decile.as_ref().map(Vec::len), Some(10));
        let text = crate::summary::terminal(&analysis, "control");
        let html = crate::summary::html(&analysis, "control").expect("html");
        for arm in &truth.arms {
            assert!(text.contains(&arm.arm), "{} in:\n{text}", arm.arm);
            assert!(html.contains(&arm.arm), "{} in the page", arm.arm);
        }
        assert!(text.contains("in short:"), "{text}");
        assert!(
            html.starts_with("<!DOCTYPE html>") || html.contains("<html"),
            "a page"
        );
    }
}
