//! Off-policy value of a targeting policy from logged experiment data: the
//! churn rate it would have had, by inverse propensity weighting (IPW),
//! self-normalised IPW and doubly robust (DR) estimation, with bootstrap
//! intervals that resample the per-learner scores (no model is refitted).

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use serde::Serialize;

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
    check_bootstrap(&bootstrap)?;
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
    Ok(Value {
        estimate,
        interval: percentile_interval(&mut replicates, alpha),
    })
}

/// The percentile interval of bootstrap replicates (linear interpolation, as numpy's default).
fn percentile_interval(replicates: &mut [f64], alpha: f64) -> Interval {
    replicates.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if replicates.is_empty() {
            return f64::NAN;
        }
        let at = q * (replicates.len() - 1) as f64;
        let (below, above) = (at.floor() as usize, at.ceil() as usize);
        replicates[below] + (replicates[above] - replicates[below]) * (at - below as f64)
    };
    Interval {
        low: quantile(alpha / 2.0),
        high: quantile(1.0 - alpha / 2.0),
    }
}

fn check_bootstrap(bootstrap: &Bootstrap) -> Result<(), AbError> {
    if !(bootstrap.alpha > 0.0 && bootstrap.alpha < 1.0) || bootstrap.resamples < 10 {
        return Err(AbError::Invalid(format!(
            "need alpha in (0, 1) and at least 10 resamples, got {} and {}",
            bootstrap.alpha, bootstrap.resamples
        )));
    }
    Ok(())
}

/// What a churn prevented is worth and what each arm's treatment costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Economics {
    pub learner_value: f64,
    /// Per arm, control (arm 0) included (usually 0).
    pub costs: Vec<f64>,
}

/// A targeting policy to evaluate: an arm for every logged learner (arm 0 =
/// control = no intervention). Choices must not depend on the learner's own
/// outcome: scores from a model that saw the learner must be cross-fitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub choices: Vec<usize>,
    /// The rule that makes these choices for a new learner, when it can be
    /// exported (`None` for policies that live elsewhere, e.g. the playbook).
    pub rule: Option<churn_model::uplift_policy::Rule>,
}

/// An estimate with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// One estimate per estimator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ByEstimator {
    pub ipw: Estimate,
    pub snipw: Estimate,
    pub dr: Estimate,
}

/// What a candidate policy would have done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyValue {
    pub name: String,
    /// The share of learners it treats (gives an arm other than control).
    pub treated_share: f64,
    /// The mean treatment cost per learner.
    pub cost_per_learner: f64,
    /// The churn rate it would have had.
    pub churn: ByEstimator,
    /// Net value per learner against treating no one: churn prevented ×
    /// learner value − treatment cost.
    pub net_value: ByEstimator,
    /// Net value by the outcome model alone (the direct method): what the
    /// cross-fitted models expect, with no correction from observed outcomes.
    pub modelled_net_value: f64,
}

const ESTIMATORS: [Estimator; 3] = [
    Estimator::Ipw,
    Estimator::SelfNormalisedIpw,
    Estimator::DoublyRobust,
];

/// Evaluates every candidate on the same log with the three estimators.
/// Bootstrap replicates resample learners once for all candidates, so the
/// intervals of differences between policies are paired. `outcome` is the
/// (cross-fitted) outcome model of [`check`]'s layout, needed by DR.
pub fn compare(
    log: &[Logged],
    candidates: &[Candidate],
    arms: usize,
    outcome: &[f64],
    economics: &Economics,
    bootstrap: Bootstrap,
) -> Result<PolicyComparison, AbError> {
    check_bootstrap(&bootstrap)?;
    if economics.costs.len() != arms
        || !economics.learner_value.is_finite()
        || economics.costs.iter().any(|c| !c.is_finite())
    {
        return Err(AbError::Invalid(format!(
            "need a finite learner value and a finite cost for each of the {arms} arms"
        )));
    }
    let none = vec![0usize; log.len()];
    let mut all: Vec<&[usize]> = vec![&none];
    for c in candidates {
        check(log, &c.choices, arms, Some(outcome))
            .map_err(|e| AbError::Invalid(format!("candidate {}: {e}", c.name)))?;
        all.push(&c.choices);
    }
    check(log, &none, arms, Some(outcome))?;
    // scores[policy][estimator]: per-learner (numerator, weight).
    let scores: Vec<Vec<Vec<(f64, f64)>>> = all
        .iter()
        .map(|policy| {
            ESTIMATORS
                .iter()
                .map(|&e| self::scores(log, policy, arms, Some(outcome), e))
                .collect()
        })
        .collect();
    let costs: Vec<Vec<f64>> = all
        .iter()
        .map(|policy| policy.iter().map(|&a| economics.costs[a]).collect())
        .collect();
    let n = log.len();
    let value = economics.learner_value;
    let net = |churn_none: f64, churn: f64, cost: f64| value * (churn_none - churn) - cost;
    let point: Vec<[(f64, f64); 3]> = (0..all.len())
        .map(|p| {
            let cost = costs[p].iter().sum::<f64>() / n as f64;
            std::array::from_fn(|e| {
                let churn = ratio(&scores[p][e], 0..n);
                let none = ratio(&scores[0][e], 0..n);
                (churn, net(none, churn, cost))
            })
        })
        .collect();
    // replicates[policy][estimator] = (churn values, net values)
    let mut replicates: Vec<[(Vec<f64>, Vec<f64>); 3]> = (0..all.len())
        .map(|_| std::array::from_fn(|_| (Vec::new(), Vec::new())))
        .collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(bootstrap.seed);
    let mut draws = vec![0usize; n];
    // paired[replicate][policy]: the DR net value, for the interval of differences.
    let mut paired: Vec<Vec<f64>> = Vec::with_capacity(bootstrap.resamples);
    for _ in 0..bootstrap.resamples {
        for d in draws.iter_mut() {
            *d = rng.random_range(0..n);
        }
        let none: [f64; 3] = std::array::from_fn(|e| ratio(&scores[0][e], draws.iter().copied()));
        let mut dr_net = Vec::with_capacity(all.len());
        for p in 0..all.len() {
            let cost = draws.iter().map(|&i| costs[p][i]).sum::<f64>() / n as f64;
            for e in 0..3 {
                let churn = ratio(&scores[p][e], draws.iter().copied());
                let value = net(none[e], churn, cost);
                if e == 2 {
                    dr_net.push(value);
                }
                if churn.is_finite() && value.is_finite() {
                    replicates[p][e].0.push(churn);
                    replicates[p][e].1.push(value);
                }
            }
        }
        paired.push(dr_net);
    }
    let estimate = |point: f64, replicates: &mut Vec<f64>| {
        let interval = percentile_interval(replicates, bootstrap.alpha);
        Estimate {
            estimate: point,
            low: interval.low,
            high: interval.high,
        }
    };
    let mut out = Vec::with_capacity(all.len());
    for (p, reps) in replicates.iter_mut().enumerate() {
        let name = if p == 0 {
            "treat_none".to_owned()
        } else {
            candidates[p - 1].name.clone()
        };
        let [ipw, snipw, dr] = reps;
        out.push(PolicyValue {
            name,
            treated_share: all[p].iter().filter(|&&a| a != 0).count() as f64 / n as f64,
            cost_per_learner: costs[p].iter().sum::<f64>() / n as f64,
            churn: ByEstimator {
                ipw: estimate(point[p][0].0, &mut ipw.0),
                snipw: estimate(point[p][1].0, &mut snipw.0),
                dr: estimate(point[p][2].0, &mut dr.0),
            },
            net_value: ByEstimator {
                ipw: estimate(point[p][0].1, &mut ipw.1),
                snipw: estimate(point[p][1].1, &mut snipw.1),
                dr: estimate(point[p][2].1, &mut dr.1),
            },
            modelled_net_value: all[p]
                .iter()
                .enumerate()
                .map(|(i, &a)| {
                    let row = &outcome[i * arms..(i + 1) * arms];
                    value * (row[0] - row[a]) - economics.costs[a]
                })
                .sum::<f64>()
                / n as f64,
        });
    }
    let paired_difference = |a: usize, b: usize| {
        let mut differences: Vec<f64> = paired
            .iter()
            .map(|row| row[a] - row[b])
            .filter(|d| d.is_finite())
            .collect();
        let interval = percentile_interval(&mut differences, bootstrap.alpha);
        Estimate {
            estimate: out[a].net_value.dr.estimate - out[b].net_value.dr.estimate,
            low: interval.low,
            high: interval.high,
        }
    };
    // The model's favourite stands unless the data show another is better.
    let by_data = best_by(&out, None, |v| v.net_value.dr.estimate);
    let by_model = best_by(&out, None, |v| v.modelled_net_value);
    let (recommended, reason) = match (by_data, by_model) {
        (Some(d), Some(m)) if d != m => {
            let gap = paired_difference(d, m);
            if gap.low > 0.0 {
                (
                    Some(d),
                    format!(
                        "{} has the highest doubly robust net value and beats the outcome model's favourite {} by {:.2} [{:.2}, {:.2}] per learner",
                        out[d].name, out[m].name, gap.estimate, gap.low, gap.high
                    ),
                )
            } else {
                (
                    Some(m),
                    format!(
                        "{} has the highest modelled net value; {} scores {:.2} [{:.2}, {:.2}] per learner more by the doubly robust estimate, which the data cannot tell from no difference",
                        out[m].name, out[d].name, gap.estimate, gap.low, gap.high
                    ),
                )
            }
        }
        (Some(d), _) => (
            Some(d),
            format!(
                "{} has the highest doubly robust and modelled net value",
                out[d].name
            ),
        ),
        _ => (None, "no policy could be valued".into()),
    };
    let runner_up = recommended.and_then(|r| best_by(&out, Some(r), |v| v.net_value.dr.estimate));
    let advantage = match (recommended, runner_up) {
        (Some(r), Some(u)) => Some(paired_difference(r, u)),
        _ => None,
    };
    Ok(PolicyComparison {
        values: out,
        recommended,
        reason,
        runner_up,
        advantage,
    })
}

/// Every candidate's value and the one to roll out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyComparison {
    /// `treat_none` first, then the candidates in the order given.
    pub values: Vec<PolicyValue>,
    /// The policy to roll out: the outcome model's favourite (highest
    /// modelled net value) unless the policy with the highest doubly robust
    /// net value beats it significantly (paired interval above 0). Ties go to
    /// the earlier, simpler candidate.
    pub recommended: Option<usize>,
    /// Why, in words.
    pub reason: String,
    /// The best other policy by the doubly robust net value.
    pub runner_up: Option<usize>,
    /// Recommended − runner-up net value per learner (DR), with its paired
    /// bootstrap interval: when it includes 0 the data cannot tell them apart.
    pub advantage: Option<Estimate>,
}

fn best_by(
    values: &[PolicyValue],
    except: Option<usize>,
    key: impl Fn(&PolicyValue) -> f64,
) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .filter(|(i, v)| key(v).is_finite() && Some(*i) != except)
        .fold(None, |best: Option<(usize, f64)>, (i, v)| match best {
            Some((_, b)) if b >= key(v) => best,
            _ => Some((i, key(v))),
        })
        .map(|(i, _)| i)
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
