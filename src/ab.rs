//! `churn ab`: the readout of one retention experiment from assignments and
//! events (outcome = the churn label at `assigned_at`).

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};
use churn_core::{format_timestamp, parse_duration};
use churn_features::label::{LabelStatus, label_status};

use crate::cli::AbArgs;
use crate::commands::{Ui, load_and_report, reference_time};

pub fn ab(ui: &Ui, args: &AbArgs) -> Result<()> {
    let horizon = parse_duration(&args.horizon)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("--horizon {:?}", args.horizon))?;
    let (mut dataset, _) = load_and_report(ui, &args.data, &args.out, reference_time(&args.now)?)?;
    if dataset.assignments.is_empty() {
        bail!(
            "{} has no assignments table: there is no experiment to read",
            args.data.display()
        );
    }
    let mut experiments: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &dataset.assignments {
        *experiments.entry(a.experiment_id.as_str()).or_default() += 1;
    }
    let experiment = match (&args.experiment, experiments.len()) {
        (Some(id), _) if experiments.contains_key(id.as_str()) => id.clone(),
        (Some(id), _) => bail!(
            "--experiment {id:?}: not in the assignments (found: {})",
            experiments.keys().copied().collect::<Vec<_>>().join(", ")
        ),
        (None, 1) => experiments
            .keys()
            .next()
            .map(|k| (*k).to_owned())
            .unwrap_or_default(),
        (None, _) => bail!(
            "several experiments: choose one with --experiment ({})",
            experiments.keys().copied().collect::<Vec<_>>().join(", ")
        ),
    };
    let data_end = dataset
        .events
        .iter()
        .map(|e| e.ts)
        .max()
        .unwrap_or(i64::MIN);
    let grouped = churn_table::Grouped::new(&mut dataset);
    let dataset = grouped.dataset();

    let rows: Vec<_> = dataset
        .assignments
        .iter()
        .filter(|a| a.experiment_id == experiment)
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
            "experiment {experiment}: learner {} is assigned {times} times ({} learners assigned more than once); one assignment per learner is needed",
            dataset.learners[learner as usize].id,
            seen.values().filter(|n| **n > 1).count()
        );
    }

    // Outcomes by arm; learners without a label are counted, not dropped silently.
    let mut arms: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut propensities: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut scored: Vec<(String, bool, Option<f64>)> = Vec::new();
    let (mut gone, mut unlabelled) = (0usize, 0usize);
    let assigned_at = rows.first().map(|a| a.assigned_at);
    for a in &rows {
        let learner = &dataset.learners[a.learner as usize];
        let events = grouped.events_of(a.learner);
        match label_status(learner.signup_at, events, a.assigned_at, horizon, data_end) {
            LabelStatus::Labelled { churned } => {
                let entry = arms.entry(a.arm.clone()).or_default();
                entry.0 += 1;
                entry.1 += u64::from(churned);
                if let Some(p) = a.propensity {
                    propensities.entry(a.arm.clone()).or_default().push(p);
                }
                scored.push((a.arm.clone(), churned, a.risk_score));
            }
            LabelStatus::NotEligible(_) => gone += 1,
            LabelStatus::Unlabelled => unlabelled += 1,
        }
    }
    if !arms.contains_key(&args.control) {
        bail!(
            "experiment {experiment}: no {:?} arm (arms: {}); name the control arm with --control",
            args.control,
            arms.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    // Control first, then the treated arms by name.
    let mut names: Vec<String> = vec![args.control.clone()];
    names.extend(arms.keys().filter(|k| **k != args.control).cloned());
    let outcomes: Vec<(u64, u64)> = names.iter().map(|n| arms[n]).collect();

    // The planned split: --allocation, else constant logged propensities, else equal.
    let planned: Vec<f64> = if args.allocation.is_empty() {
        names
            .iter()
            .map(|n| {
                let p = propensities.get(n).map(Vec::as_slice).unwrap_or(&[]);
                match p.first() {
                    Some(&first) if p.iter().all(|&q| q == first) => first,
                    _ => 1.0,
                }
            })
            .collect()
    } else {
        let mut shares = HashMap::new();
        for item in &args.allocation {
            let Some((arm, share)) = item.split_once('=') else {
                bail!("--allocation {item:?}: expected arm=share");
            };
            let share: f64 = share
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                .with_context(|| {
                    format!("--allocation {item:?}: the share must be a positive number")
                })?;
            if !names.iter().any(|n| n == arm) {
                bail!(
                    "--allocation {item:?}: no arm {arm:?} (arms: {})",
                    names.join(", ")
                );
            }
            shares.insert(arm.to_owned(), share);
        }
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
    let varying = propensities.values().any(|p| p.iter().any(|&q| q != p[0]));
    let readout = churn_ab::readout::readout(&names, &outcomes, &args.control, &planned, 0.05)?;

    let analysed: u64 = outcomes.iter().map(|o| o.0).sum();
    println!(
        "experiment {experiment} at {}: {} assigned = {analysed} with a {}-day outcome + {gone} already gone at assignment + {unlabelled} whose horizon runs past the data",
        assigned_at.map(format_timestamp).unwrap_or_default(),
        rows.len(),
        horizon / churn_core::DAY_MS
    );
    println!(
        "\n{:<22} {:>7} {:>8} {:>8}  95% interval",
        "arm", "n", "churned", "rate"
    );
    for a in &readout.arms {
        println!(
            "{:<22} {:>7} {:>8} {:>7.1}%  [{:.1}%, {:.1}%]",
            a.arm,
            a.n,
            a.churned,
            100.0 * a.rate,
            100.0 * a.interval.0,
            100.0 * a.interval.1
        );
    }
    println!(
        "\nagainst {}: difference in churn (negative = fewer churned)",
        args.control
    );
    for c in &readout.comparisons {
        println!(
            "{:<22} {:>+7.2} pp  [{:+.2}, {:+.2}]  relative {:+.1}%  p {}  Holm p {}{}",
            c.arm,
            100.0 * c.difference,
            100.0 * c.interval.0,
            100.0 * c.interval.1,
            100.0 * c.relative,
            c.p_value.map_or("–".into(), |p| format!("{p:.4}")),
            c.p_holm.map_or("–".into(), |p| format!("{p:.4}")),
            if c.p_holm.is_some_and(|p| p < 0.05) && c.interval.1 < 0.0 {
                "  ← reduces churn"
            } else {
                ""
            }
        );
    }
    let srm = &readout.sample_ratio;
    println!(
        "\nsample ratio: chi-square {:.2}, p {:.4} against the planned split {:?}{}",
        srm.chi2,
        srm.p_value,
        srm.planned
            .iter()
            .map(|s| (s * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>(),
        if srm.mismatch {
            "  ** MISMATCH (p < 0.001): the assignment did not follow the plan; do not trust the effects **"
        } else {
            "  (no mismatch)"
        }
    );
    if varying && args.allocation.is_empty() {
        println!(
            "note: propensities vary by learner (targeted assignment): the per-arm rates above compare different populations; give --allocation for the planned split"
        );
    }
    // Who it helps: effects by decile of the risk score logged at assignment.
    let deciles = if scored.iter().all(|s| s.2.is_some()) {
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let learners: Vec<(usize, bool, f64)> = scored
            .iter()
            .filter_map(|(arm, churned, risk)| {
                Some((*index.get(arm.as_str())?, *churned, (*risk)?))
            })
            .collect();
        let deciles = churn_ab::readout::by_risk_decile(&names, 0, &learners, 0.05)?;
        println!("\nby decile of the logged risk score (difference vs control, pp):");
        print!("{:<8} {:>13}", "decile", "risk");
        for name in &names[1..] {
            print!("  {name:>26}");
        }
        println!();
        for d in &deciles {
            print!("{:<8} {:>5.3}–{:<7.3}", d.decile, d.risk_low, d.risk_high);
            for e in &d.effects {
                match (e.difference, e.interval) {
                    (Some(diff), Some((low, high))) => print!(
                        "  {:>+7.1} [{:>+6.1}, {:>+6.1}]",
                        100.0 * diff,
                        100.0 * low,
                        100.0 * high
                    ),
                    _ => print!("  {:>26}", "–"),
                }
            }
            println!();
        }
        Some(deciles)
    } else {
        println!("\n(no risk score on every assignment: effects by risk decile need one)");
        None
    };
    let out = args.out.join("ab.json");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let json = serde_json::json!({
        "experiment": experiment,
        "assigned": rows.len(),
        "analysed": analysed,
        "excluded": {"already_gone": gone, "horizon_past_data": unlabelled},
        "horizon_days": horizon / churn_core::DAY_MS,
        "propensities_vary": varying,
        "readout": readout,
        "by_risk_decile": deciles,
    });
    std::fs::write(&out, format!("{json:#}\n"))
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
