//! `churn ab`: the readout of one retention experiment (outcome = the churn
//! label at `assigned_at`, or the assignments' `churned` column), who it
//! helps, and which targeting policy to roll out; `churn ab plan` sizes one.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};
use churn_ab::policy_value::{Bootstrap, Candidate, Economics, Logged, PolicyComparison};
use churn_ab::readout::{Decile, Readout};
use churn_ab::stats::Cuped;
use churn_ab::uplift::{Curve, Learners, Scored, TLearner};
use churn_core::{DAY_MS, Dataset, format_timestamp, parse_duration};
use churn_features::FeatureRow;
use churn_model::{Input, Policy};
use churn_table::{Grouped, SnapshotSpec};
use serde::Serialize;

use crate::ab_report;
use crate::cli::{AbArgs, AbCommand, ModelSource, PlanArgs};
use crate::commands::{Ui, load_and_report, reference_time, write_json_and_html};

/// One analysed learner.
pub struct Unit<'d> {
    pub arm: usize,
    pub churned: bool,
    pub propensity: Option<f64>,
    pub risk_score: Option<f64>,
    pub cost: Option<f64>,
    pub features: FeatureRow<'d>,
}

/// The learners of one experiment with an outcome, and those left out.
pub struct Experiment<'d> {
    pub id: String,
    /// Control first, then the treated arms by name.
    pub names: Vec<String>,
    pub units: Vec<Unit<'d>>,
    pub assigned: usize,
    pub already_gone: usize,
    pub horizon_past_data: usize,
    pub assigned_at: Vec<i64>,
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

pub fn ab(ui: &Ui, args: &AbArgs) -> Result<()> {
    if let Some(AbCommand::Plan(plan_args)) = &args.command {
        return plan(plan_args);
    }
    let data = args.data.as_ref().context("--data is required")?;
    let horizon = parse_duration(&args.horizon)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("--horizon {:?}", args.horizon))?;
    if !(args.learner_value.is_finite() && args.learner_value >= 0.0) {
        bail!(
            "--learner-value {}: must be a non-negative number",
            args.learner_value
        );
    }
    let model = match &args.model {
        Some(model) => Some(crate::scoring::load_feature_model(&ModelSource {
            model: model.clone(),
            models: args.models.clone(),
        })?),
        None => None,
    };
    let (mut dataset, _) = load_and_report(ui, data, &args.out, reference_time(&args.now)?)?;
    if !args.prediction_log.is_empty() {
        let log = crate::ab_log::assignments_from_log(
            &args.prediction_log,
            &dataset,
            &args.control,
            &args.out,
        )?;
        println!(
            "prediction log: {} lines = {} assignments + {} repeat predictions + {} rejected (written to {})",
            log.lines,
            log.assignments.len(),
            log.repeats,
            log.rejected,
            log.rejects_path.display()
        );
        dataset.assignments = log.assignments;
    }
    let spinner = ui.spinner("outcomes and features at assignment");
    let experiment = experiment(&mut dataset, args, horizon)?;
    spinner.finish_and_clear();
    let analysis = analyse(ui, args, &experiment, model.as_ref(), horizon)?;
    ab_report::print(&analysis, &args.control);
    let html = ab_report::html(&analysis, &args.control)?;
    write_json_and_html(&args.out, "ab", &analysis, &html)?;
    Ok(())
}

fn plan(args: &PlanArgs) -> Result<()> {
    let n = churn_ab::stats::learners_per_arm(
        args.baseline_rate,
        args.mde,
        args.alpha,
        args.power,
        args.arms,
    )
    .map_err(anyhow::Error::msg)?;
    let per_arm = n.ceil() as u64;
    println!(
        "{per_arm} learners per arm ({} in all with control and {} treated arm{}) detect a churn reduction from {:.1}% to {:.1}% with power {} at two-sided alpha {} ({} per comparison).",
        per_arm * (args.arms as u64 + 1),
        args.arms,
        if args.arms == 1 { "" } else { "s" },
        100.0 * args.baseline_rate,
        100.0 * (args.baseline_rate - args.mde),
        args.power,
        args.alpha,
        args.alpha / args.arms as f64
    );
    Ok(())
}

/// Chooses the experiment, checks its assignments and computes each learner's
/// outcome and features at assignment.
fn experiment<'d>(dataset: &'d mut Dataset, args: &AbArgs, horizon: i64) -> Result<Experiment<'d>> {
    if dataset.assignments.is_empty() {
        bail!("the data has no assignments table: there is no experiment to read");
    }
    let mut experiments: BTreeMap<String, usize> = BTreeMap::new();
    for a in &dataset.assignments {
        *experiments.entry(a.experiment_id.clone()).or_default() += 1;
    }
    let listed = || experiments.keys().cloned().collect::<Vec<_>>().join(", ");
    let id = match (&args.experiment, experiments.len()) {
        (Some(id), _) if experiments.contains_key(id) => id.clone(),
        (Some(id), _) => bail!(
            "--experiment {id:?}: not in the assignments (found: {})",
            listed()
        ),
        (None, 1) => experiments.keys().next().cloned().unwrap_or_default(),
        (None, _) => bail!(
            "several experiments: choose one with --experiment ({})",
            listed()
        ),
    };
    let data_end = dataset.last_event_time().unwrap_or(i64::MIN);
    let grouped = Grouped::new(dataset);
    let dataset = grouped.dataset();
    let rows: Vec<_> = dataset
        .assignments
        .iter()
        .filter(|a| a.experiment_id == id)
        .collect();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for a in &rows {
        *seen.entry(a.learner).or_default() += 1;
    }
    if let Some((&learner, &times)) = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .min_by_key(|(l, _)| **l)
    {
        bail!(
            "experiment {id}: learner {} is assigned {times} times ({} learners assigned more than once); one assignment per learner is needed",
            dataset.learners[learner as usize].id,
            seen.values().filter(|n| **n > 1).count()
        );
    }
    let mut arm_names: Vec<String> = rows.iter().map(|a| a.arm.clone()).collect();
    arm_names.sort();
    arm_names.dedup();
    if !arm_names.contains(&args.control) {
        bail!(
            "experiment {id}: no {:?} arm (arms: {}); name the control arm with --control",
            args.control,
            arm_names.join(", ")
        );
    }
    let mut names = vec![args.control.clone()];
    names.extend(arm_names.into_iter().filter(|n| *n != args.control));
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();

    // One snapshot plan per assignment time.
    let mut by_time: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (r, a) in rows.iter().enumerate() {
        by_time.entry(a.assigned_at).or_default().push(r);
    }
    let mut units = Vec::with_capacity(rows.len());
    let (mut already_gone, mut horizon_past_data) = (0, 0);
    for (&t, members) in &by_time {
        let plan = SnapshotSpec {
            from: Some(t),
            to: Some(t),
            every: DAY_MS,
            horizon,
            data_end: Some(data_end),
        }
        .resolve_for_span(Some((t, data_end.max(t))))?;
        let learners: Vec<u32> = members.iter().map(|&r| rows[r].learner).collect();
        for (&r, examples) in members.iter().zip(grouped.examples(&learners, &plan)) {
            let a = rows[r];
            let Some(example) = examples.into_iter().next() else {
                already_gone += 1;
                continue;
            };
            let Some(churned) = a.churned.or(example.churned) else {
                horizon_past_data += 1;
                continue;
            };
            units.push(Unit {
                arm: index[a.arm.as_str()],
                churned,
                propensity: a.propensity,
                risk_score: a.risk_score,
                cost: a.cost,
                features: example.features,
            });
        }
    }
    if units.is_empty() {
        bail!("experiment {id}: no assigned learner has an outcome yet");
    }
    Ok(Experiment {
        id,
        names,
        units,
        assigned: rows.len(),
        already_gone,
        horizon_past_data,
        assigned_at: by_time.keys().copied().collect(),
    })
}

/// `ARM=VALUE` items into a value per arm name, refusing unknown arms.
fn per_arm(
    items: &[String],
    flag: &str,
    names: &[String],
    positive: bool,
) -> Result<HashMap<String, f64>> {
    let mut out = HashMap::new();
    for item in items {
        let Some((arm, value)) = item.split_once('=') else {
            bail!("{flag} {item:?}: expected ARM=NUMBER");
        };
        let value: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && if positive { *v > 0.0 } else { *v >= 0.0 })
            .with_context(|| {
                format!(
                    "{flag} {item:?}: the number must be {}",
                    if positive { "positive" } else { "non-negative" }
                )
            })?;
        if !names.iter().any(|n| n == arm) {
            bail!(
                "{flag} {item:?}: no arm {arm:?} (arms: {})",
                names.join(", ")
            );
        }
        out.insert(arm.to_owned(), value);
    }
    Ok(out)
}

fn analyse(
    ui: &Ui,
    args: &AbArgs,
    experiment: &Experiment<'_>,
    model: Option<&churn_model::artifact::Artifact>,
    horizon: i64,
) -> Result<Analysis> {
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
                shares
                    .get(n)
                    .copied()
                    .with_context(|| format!("--allocation: no share for arm {n:?}"))
            })
            .collect::<Result<_>>()?
    };
    if propensities_vary && args.allocation.is_empty() {
        notes.push("propensities vary by learner (targeted assignment): the per-arm rates compare different populations; the policy values below weight by the logged propensities, and so does the sample-ratio check.".into());
    }
    let mut readout = churn_ab::readout::readout(names, &outcomes, &args.control, &planned, 0.05)?;
    if propensities_vary && args.allocation.is_empty() {
        let logged: Option<Vec<f64>> = units.iter().map(|u| u.propensity).collect();
        if let Some(propensity) = logged {
            let arm: Vec<usize> = units.iter().map(|u| u.arm).collect();
            let test = churn_ab::stats::propensity_ratio_mismatch(&arm, &propensity, arms)?;
            readout.sample_ratio = churn_ab::readout::SampleRatio {
                method: "Horvitz–Thompson: each arm's Σ 1/propensity against the learners assigned (largest |z|, Bonferroni over arms)".into(),
                chi2: test.statistic,
                p_value: test.p_value,
                mismatch: test.p_value < 0.001,
                planned: Vec::new(),
            };
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
            Some(churn_ab::readout::by_risk_decile(
                names, 0, &learners, 0.05,
            )?)
        }
        None => {
            notes.push("no risk score: give --model (or log risk_score at assignment) for effects by risk decile and the top-k% by risk policies".into());
            None
        }
    };

    // Economics.
    let flagged = per_arm(&args.cost, "--cost", names, false)?;
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
            ui,
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

fn cuped(experiment: &Experiment<'_>, feature: &str) -> Result<Vec<CupedComparison>> {
    let covariate: Vec<f64> = experiment
        .units
        .iter()
        .map(|u| {
            u.features.number(feature).with_context(|| {
                format!("--cuped {feature:?}: not a numeric feature (see churn features --list)")
            })
        })
        .collect::<Result<_>>()?;
    if let Some(missing) = covariate.iter().position(|x| !x.is_finite()) {
        bail!(
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
            let c =
                churn_ab::stats::cuped((&treated.0, &treated.1), (&control.0, &control.1), 0.05)
                    .map_err(|e| anyhow::anyhow!("CUPED for {}: {e}", experiment.names[a]))?;
            Ok(CupedComparison::new(&experiment.names[a], c))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn uplift_and_policies(
    ui: &Ui,
    args: &AbArgs,
    experiment: &Experiment<'_>,
    model: Option<&churn_model::artifact::Artifact>,
    risk: Option<&[f64]>,
    planned: &[f64],
    economics: &Economics,
    notes: &mut Vec<String>,
) -> Result<(Vec<ArmUplift>, Option<PolicyComparison>)> {
    let names = &experiment.names;
    let units = &experiment.units;
    let arms = names.len();
    let features: Vec<FeatureRow<'_>> = units.iter().map(|u| u.features.clone()).collect();
    let design = churn_ab::design::Design::new(&features)?;
    let arm: Vec<usize> = units.iter().map(|u| u.arm).collect();
    let churned: Vec<bool> = units.iter().map(|u| u.churned).collect();
    let tlearner = TLearner::for_experiments(args.seed)?;
    let bar = ui.progress(
        (tlearner.folds * arms) as u64,
        "uplift models (cross-fitted)",
    );
    let outcome = tlearner.cross_fit(
        &design.schema.gbdt_schema(),
        &Learners {
            rows: &design.rows,
            arm: &arm,
            churned: &churned,
        },
        arms,
        &mut |done| bar.inc(done as u64),
    )?;
    bar.finish_and_clear();

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
            qini_coefficient: churn_ab::uplift::qini_coefficient(&samples)?,
            auuc: churn_ab::uplift::auuc(&samples)?,
            uplift_at_10: churn_ab::uplift::uplift_at_k(&samples, 0.1, false)?,
            uplift_at_30: churn_ab::uplift::uplift_at_k(&samples, 0.3, false)?,
            mean_predicted: samples.iter().map(|s| s.uplift).sum::<f64>() / samples.len() as f64,
            qini: churn_ab::uplift::qini_curve(&samples)?,
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
    let mut candidates = churn_ab::targeting::candidates(names, risk, &outcome, economics)?;
    if let Some(artifact) = model {
        candidates.push(playbook_candidate(artifact, experiment, notes)?);
    }
    let comparison = churn_ab::policy_value::compare(
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
        let learners = Learners {
            rows: &design.rows,
            arm: &arm,
            churned: &churned,
        };
        let exported = Export {
            experiment,
            design: &design,
            learners: &learners,
            tlearner: &tlearner,
            economics,
            comparison: &comparison,
            candidates: &candidates,
        };
        let path = exported.write(dir)?;
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
    design: &'a churn_ab::design::Design,
    learners: &'a Learners<'a>,
    tlearner: &'a TLearner,
    economics: &'a Economics,
    comparison: &'a PolicyComparison,
    candidates: &'a [Candidate],
}

impl Export<'_, '_> {
    fn write(&self, dir: &std::path::Path) -> Result<std::path::PathBuf> {
        use churn_model::uplift_policy::{PolicyCard, Rule};
        let chosen = self
            .comparison
            .recommended
            .context("no policy could be valued: nothing to export")?;
        let value = &self.comparison.values[chosen];
        // Value 0 is treat_none; candidate k is value k + 1.
        let rule = match chosen {
            0 => Rule::Nobody,
            k => self.candidates[k - 1].rule.clone().with_context(|| {
                format!(
                    "the recommended policy is {}: it is not an exportable rule (serve the playbook instead)",
                    value.name
                )
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
                    self.tlearner.fit_arm(
                        &schema,
                        self.learners,
                        &rows,
                        self.tlearner.seed ^ (a as u64 + 1),
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
            version: churn_model::artifact::version_stamp(crate::commands::now_ms()),
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
) -> Result<Candidate> {
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
