//! The per-arm readout of one experiment: churn by arm with Wilson intervals,
//! each treated arm against control (difference, Newcombe interval, z-test,
//! Holm-adjusted p-value) and the sample-ratio check.

use serde::Serialize;

use crate::AbError;
use crate::stats::{self, Interval};

/// One arm's outcomes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmRate {
    pub arm: String,
    pub n: u64,
    pub churned: u64,
    pub rate: f64,
    pub interval: (f64, f64),
}

/// A treated arm against control. Negative differences are churn reductions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub arm: String,
    /// Treated rate − control rate.
    pub difference: f64,
    /// Newcombe interval of the difference.
    pub interval: (f64, f64),
    /// Difference relative to the control rate.
    pub relative: f64,
    pub z: Option<f64>,
    pub p_value: Option<f64>,
    /// Holm-adjusted across the treated arms.
    pub p_holm: Option<f64>,
}

/// `p` below which the sample-ratio check says the assignment did not follow
/// the plan.
pub const SAMPLE_RATIO_ALPHA: f64 = 0.001;

/// The sample-ratio check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleRatio {
    /// How it was tested.
    pub method: String,
    /// Pearson's chi-square, or the largest |z| for the propensity method.
    pub chi2: f64,
    pub p_value: f64,
    /// `p < 0.001`: the assignment did not follow the plan; effects are suspect.
    pub mismatch: bool,
    /// The planned share of each arm, in arm order.
    pub planned: Vec<f64>,
}

impl SampleRatio {
    /// The check for learners assigned with logged propensities that vary
    /// (targeted assignment), where a chi-square against one planned split
    /// does not apply: each arm's Horvitz–Thompson count Σ 1/propensity
    /// against the learners assigned ([`stats::propensity_ratio_mismatch`]).
    pub fn from_propensities(
        arm: &[usize],
        propensity: &[f64],
        arms: usize,
    ) -> Result<SampleRatio, AbError> {
        let test = stats::propensity_ratio_mismatch(arm, propensity, arms)?;
        Ok(SampleRatio {
            method: "Horvitz–Thompson: each arm's Σ 1/propensity against the learners assigned (largest |z|, Bonferroni over arms)".into(),
            chi2: test.statistic,
            p_value: test.p_value,
            mismatch: test.p_value < SAMPLE_RATIO_ALPHA,
            planned: Vec::new(),
        })
    }
}

/// Everything the readout says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readout {
    pub arms: Vec<ArmRate>,
    pub comparisons: Vec<Comparison>,
    pub sample_ratio: SampleRatio,
    pub alpha: f64,
}

fn pair(i: Interval) -> (f64, f64) {
    (i.low, i.high)
}

/// `outcomes[a] = (n, churned)` per arm, arm names in the same order, `control`
/// the name of the control arm, `planned` the planned share per arm.
pub fn readout(
    names: &[String],
    outcomes: &[(u64, u64)],
    control: &str,
    planned: &[f64],
    alpha: f64,
) -> Result<Readout, AbError> {
    if names.len() != outcomes.len() || names.len() != planned.len() {
        return Err(AbError::Invalid(
            "one name, outcome and planned share per arm".into(),
        ));
    }
    let Some(c) = names.iter().position(|n| n == control) else {
        return Err(AbError::Invalid(format!(
            "no control arm {control:?} among {}",
            names.join(", ")
        )));
    };
    let mut arms = Vec::new();
    for (name, &(n, churned)) in names.iter().zip(outcomes) {
        let interval = stats::wilson(churned, n, alpha)
            .map_err(|e| AbError::Invalid(format!("arm {name}: {e}")))?;
        arms.push(ArmRate {
            arm: name.clone(),
            n,
            churned,
            rate: churned as f64 / n as f64,
            interval: pair(interval),
        });
    }
    let (n0, k0) = outcomes[c];
    let mut comparisons = Vec::new();
    for (a, name) in names.iter().enumerate().filter(|(a, _)| *a != c) {
        let (n1, k1) = outcomes[a];
        let interval = stats::newcombe(k1, n1, k0, n0, alpha)?;
        let test = stats::two_proportion_z(k1, n1, k0, n0)?;
        let difference = arms[a].rate - arms[c].rate;
        comparisons.push(Comparison {
            arm: name.clone(),
            difference,
            interval: pair(interval),
            relative: if arms[c].rate > 0.0 {
                difference / arms[c].rate
            } else {
                f64::NAN
            },
            z: test.map(|t| t.statistic),
            p_value: test.map(|t| t.p_value),
            p_holm: None,
        });
    }
    let tested: Vec<usize> = (0..comparisons.len())
        .filter(|&i| comparisons[i].p_value.is_some())
        .collect();
    let p: Vec<f64> = tested
        .iter()
        .filter_map(|&i| comparisons[i].p_value)
        .collect();
    for (&i, adjusted) in tested.iter().zip(stats::holm(&p)?) {
        comparisons[i].p_holm = Some(adjusted);
    }
    let counts: Vec<u64> = outcomes.iter().map(|o| o.0).collect();
    let srm = stats::sample_ratio_mismatch(&counts, planned)?;
    let total: f64 = planned.iter().sum();
    Ok(Readout {
        arms,
        comparisons,
        sample_ratio: SampleRatio {
            method: "Pearson chi-square of the arm counts against the planned split".into(),
            chi2: srm.statistic,
            p_value: srm.p_value,
            mismatch: srm.p_value < SAMPLE_RATIO_ALPHA,
            planned: planned.iter().map(|s| s / total).collect(),
        },
        alpha,
    })
}

/// One arm against control inside a risk decile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecileEffect {
    pub arm: String,
    pub n: u64,
    pub churned: u64,
    /// Arm rate − control rate in this decile; `None` when either side is empty.
    pub difference: Option<f64>,
    pub interval: Option<(f64, f64)>,
}

/// The learners of one risk decile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decile {
    /// 1 = lowest risk.
    pub decile: usize,
    pub risk_low: f64,
    pub risk_high: f64,
    pub control_n: u64,
    pub control_churned: u64,
    pub effects: Vec<DecileEffect>,
}

/// Effects against control by decile of a risk score known at assignment:
/// `learners` are `(arm index into names, churned, risk)`. Deciles hold equal
/// numbers of learners (ties split by order).
pub fn by_risk_decile(
    names: &[String],
    control: usize,
    learners: &[(usize, bool, f64)],
    alpha: f64,
) -> Result<Vec<Decile>, AbError> {
    if let Some(l) = learners
        .iter()
        .find(|l| l.0 >= names.len() || !l.2.is_finite())
    {
        return Err(AbError::Invalid(format!(
            "a learner has arm {} of {} or a risk score of {}",
            l.0,
            names.len(),
            l.2
        )));
    }
    let mut order: Vec<usize> = (0..learners.len()).collect();
    order.sort_by(|&a, &b| learners[a].2.total_cmp(&learners[b].2));
    let n = order.len();
    let mut deciles = Vec::new();
    for d in 0..10 {
        let members = &order[d * n / 10..(d + 1) * n / 10];
        if members.is_empty() {
            continue;
        }
        let mut counts = vec![(0u64, 0u64); names.len()];
        for &i in members {
            let (arm, churned, _) = learners[i];
            counts[arm].0 += 1;
            counts[arm].1 += u64::from(churned);
        }
        let (n0, k0) = counts[control];
        let mut effects = Vec::new();
        for (a, name) in names.iter().enumerate().filter(|(a, _)| *a != control) {
            let (n1, k1) = counts[a];
            let (difference, interval) = if n1 > 0 && n0 > 0 {
                let ci = stats::newcombe(k1, n1, k0, n0, alpha)?;
                (
                    Some(k1 as f64 / n1 as f64 - k0 as f64 / n0 as f64),
                    Some(pair(ci)),
                )
            } else {
                (None, None)
            };
            effects.push(DecileEffect {
                arm: name.clone(),
                n: n1,
                churned: k1,
                difference,
                interval,
            });
        }
        deciles.push(Decile {
            decile: d + 1,
            risk_low: learners[members[0]].2,
            risk_high: learners[members[members.len() - 1]].2,
            control_n: n0,
            control_churned: k0,
            effects,
        });
    }
    Ok(deciles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_use_control_and_holm_across_treated_arms() {
        let names: Vec<String> = ["control", "a", "b"].map(String::from).to_vec();
        let r = readout(
            &names,
            &[(1000, 200), (1000, 150), (1000, 190)],
            "control",
            &[1.0; 3],
            0.05,
        )
        .unwrap();
        assert_eq!(r.comparisons.len(), 2);
        assert!((r.comparisons[0].difference + 0.05).abs() < 1e-12);
        let p: Vec<f64> = r.comparisons.iter().map(|c| c.p_value.unwrap()).collect();
        let holm = stats::holm(&p).unwrap();
        assert_eq!(r.comparisons[0].p_holm, Some(holm[0]));
        assert!(!r.sample_ratio.mismatch);
        let skewed = readout(
            &names,
            &[(1400, 200), (800, 150), (800, 190)],
            "control",
            &[1.0; 3],
            0.05,
        )
        .unwrap();
        assert!(skewed.sample_ratio.mismatch);
        assert!(readout(&names, &[(1, 0); 3], "placebo", &[1.0; 3], 0.05).is_err());
    }

    #[test]
    fn deciles_split_by_risk_and_compare_within() {
        let names: Vec<String> = ["control", "a"].map(String::from).to_vec();
        // Risk i/100; arm alternates; the treated arm only helps the riskiest half.
        let learners: Vec<(usize, bool, f64)> = (0..100)
            .map(|i| {
                let arm = i % 2;
                let churned = if i >= 50 { arm == 0 } else { i % 4 == 0 };
                (arm, churned, i as f64 / 100.0)
            })
            .collect();
        let deciles = by_risk_decile(&names, 0, &learners, 0.05).unwrap();
        assert_eq!(deciles.len(), 10);
        assert_eq!((deciles[0].risk_low, deciles[9].risk_high), (0.0, 0.99));
        assert_eq!(deciles[9].control_n + deciles[9].effects[0].n, 10);
        assert_eq!(deciles[9].effects[0].difference, Some(-1.0));
        assert!(by_risk_decile(&names, 0, &[(2, true, 0.5)], 0.05).is_err());
    }
}
