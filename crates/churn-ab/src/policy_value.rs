//! Off-policy value of a targeting policy from logged experiment data: the
//! churn rate it would have had, by inverse propensity weighting (IPW),
//! self-normalised IPW and doubly robust (DR) estimation, with bootstrap
//! intervals that resample the per-learner scores (no model is refitted).

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::AbError;
use crate::stats::Interval;

/// One logged learner: the arm given, the probability it had of being given
/// that arm, and whether the learner churned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logged {
    pub arm: usize,
    pub propensity: f64,
    pub churned: bool,
}

/// The estimators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimator {
    Ipw,
    SelfNormalisedIpw,
    DoublyRobust,
}

/// How the interval is made: a percentile bootstrap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// 1 − confidence level.
    pub alpha: f64,
    pub resamples: usize,
    pub seed: u64,
}

/// A policy's estimated churn rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value {
    pub estimate: f64,
    pub interval: Interval,
}

/// Checks the log, the policy's choices and (for DR) the outcome model.
/// `outcome[i * arms + a]` is the modelled churn probability of learner `i` under arm `a`.
fn check(
    log: &[Logged],
    policy: &[usize],
    arms: usize,
    outcome: Option<&[f64]>,
) -> Result<(), AbError> {
    if log.is_empty() || log.len() != policy.len() {
        return Err(AbError::Invalid(format!(
            "{} logged learners and {} policy choices: need the same number, at least 1",
            log.len(),
            policy.len()
        )));
    }
    for (i, l) in log.iter().enumerate() {
        if !(l.propensity > 0.0 && l.propensity <= 1.0) {
            return Err(AbError::Invalid(format!(
                "learner {i}: propensity {} is not in (0, 1]",
                l.propensity
            )));
        }
        if l.arm >= arms || policy[i] >= arms {
            return Err(AbError::Invalid(format!(
                "learner {i}: arm out of range 0..{arms}"
            )));
        }
    }
    if let Some(mu) = outcome {
        if mu.len() != log.len() * arms {
            return Err(AbError::Invalid(format!(
                "outcome model: {} values for {} learners × {arms} arms",
                mu.len(),
                log.len()
            )));
        }
        if let Some(v) = mu.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(AbError::Invalid(format!(
                "outcome model: {v} is not a probability"
            )));
        }
    }
    Ok(())
}

/// Per-learner scores `(numerator, weight)`: the estimate is Σ numerator / Σ
/// weight (weight 1 per learner, except for self-normalised IPW).
fn scores(
    log: &[Logged],
    policy: &[usize],
    arms: usize,
    outcome: Option<&[f64]>,
    estimator: Estimator,
) -> Vec<(f64, f64)> {
    log.iter()
        .zip(policy)
        .enumerate()
        .map(|(i, (l, &target))| {
            let matched = if l.arm == target {
                1.0 / l.propensity
            } else {
                0.0
            };
            let y = f64::from(u8::from(l.churned));
            match (estimator, outcome) {
                (Estimator::Ipw, _) => (matched * y, 1.0),
                (Estimator::SelfNormalisedIpw, _) => (matched * y, matched),
                (Estimator::DoublyRobust, Some(mu)) => {
                    let row = &mu[i * arms..(i + 1) * arms];
                    (row[target] + matched * (y - row[l.arm]), 1.0)
                }
                (Estimator::DoublyRobust, None) => (f64::NAN, 1.0),
            }
        })
        .collect()
}

fn ratio(scores: &[(f64, f64)], rows: impl Iterator<Item = usize>) -> f64 {
    let (mut top, mut bottom) = (0.0, 0.0);
    for i in rows {
        top += scores[i].0;
        bottom += scores[i].1;
    }
    if bottom > 0.0 { top / bottom } else { f64::NAN }
}

/// The churn rate `policy` (an arm per logged learner) would have had, with a
/// percentile bootstrap interval.
/// DR needs `outcome` (see [`check`]'s layout).
pub fn policy_churn(
    log: &[Logged],
    policy: &[usize],
    arms: usize,
    outcome: Option<&[f64]>,
    estimator: Estimator,
    bootstrap: Bootstrap,
) -> Result<Value, AbError> {
    let Bootstrap {
        alpha,
        resamples,
        seed,
    } = bootstrap;
    check(log, policy, arms, outcome)?;
    if estimator == Estimator::DoublyRobust && outcome.is_none() {
        return Err(AbError::Invalid(
            "the doubly robust estimator needs an outcome model".into(),
        ));
    }
    if !(alpha > 0.0 && alpha < 1.0) || resamples < 10 {
        return Err(AbError::Invalid(format!(
            "need alpha in (0, 1) and at least 10 resamples, got {alpha} and {resamples}"
        )));
    }
    let scores = scores(log, policy, arms, outcome, estimator);
    let n = scores.len();
    let estimate = ratio(&scores, 0..n);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut replicates: Vec<f64> = (0..resamples)
        .map(|_| {
            let draws: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            ratio(&scores, draws.into_iter())
        })
        .filter(|v| v.is_finite())
        .collect();
    replicates.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if replicates.is_empty() {
            return f64::NAN;
        }
        let at = q * (replicates.len() - 1) as f64;
        let (below, above) = (at.floor() as usize, at.ceil() as usize);
        replicates[below] + (replicates[above] - replicates[below]) * (at - below as f64)
    };
    Ok(Value {
        estimate,
        interval: Interval {
            low: quantile(alpha / 2.0),
            high: quantile(1.0 - alpha / 2.0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bootstrap = Bootstrap {
        alpha: 0.05,
        resamples: 100,
        seed: 1,
    };

    #[test]
    fn bad_logs_are_refused_by_learner() {
        let log = [Logged {
            arm: 0,
            propensity: 0.0,
            churned: true,
        }];
        let err = policy_churn(&log, &[0], 2, None, Estimator::Ipw, B).unwrap_err();
        assert!(err.to_string().contains("learner 0"), "{err}");
        let ok = [Logged {
            arm: 0,
            propensity: 0.5,
            churned: true,
        }];
        assert!(policy_churn(&ok, &[2], 2, None, Estimator::Ipw, B).is_err());
        assert!(policy_churn(&ok, &[0], 2, None, Estimator::DoublyRobust, B).is_err());
        assert!(policy_churn(&ok, &[0, 1], 2, None, Estimator::Ipw, B).is_err());
    }
}
