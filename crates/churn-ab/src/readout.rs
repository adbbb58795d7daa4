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

/// The sample-ratio check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleRatio {
    pub chi2: f64,
    pub p_value: f64,
    /// `p < 0.001`: the assignment did not follow the plan; effects are suspect.
    pub mismatch: bool,
    /// The planned share of each arm, in arm order.
    pub planned: Vec<f64>,
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
            chi2: srm.statistic,
            p_value: srm.p_value,
            mismatch: srm.p_value < 0.001,
            planned: planned.iter().map(|s| s / total).collect(),
        },
        alpha,
    })
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
}
