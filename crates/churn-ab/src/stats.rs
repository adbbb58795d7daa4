//! Proportions, their intervals and tests.

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

use crate::AbError;

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The standard normal.
fn normal() -> Normal {
    // Mean 0 and sd 1 are valid parameters: this cannot fail.
    Normal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!("N(0, 1) is valid"))
}

/// The two-sided critical value `z_{1 − α/2}`.
fn critical(alpha: f64) -> Result<f64, AbError> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(AbError::Invalid(format!(
            "alpha must be in (0, 1), got {alpha}"
        )));
    }
    Ok(normal().inverse_cdf(1.0 - alpha / 2.0))
}

fn check_count(k: u64, n: u64) -> Result<(), AbError> {
    if n == 0 || k > n {
        return Err(AbError::Invalid(format!(
            "{k} events out of {n}: need 0 ≤ events ≤ n and n ≥ 1"
        )));
    }
    Ok(())
}

/// Wilson score interval for `k` events out of `n` (statsmodels
/// `proportion_confint(method="wilson")`).
pub fn wilson(k: u64, n: u64, alpha: f64) -> Result<Interval, AbError> {
    check_count(k, n)?;
    let z = critical(alpha)?;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Ok(Interval {
        low: center - half,
        high: center + half,
    })
}

/// Newcombe's hybrid score interval for `p1 − p0` (his method 10; statsmodels
/// `confint_proportions_2indep(method="newcomb", compare="diff")`).
pub fn newcombe(k1: u64, n1: u64, k0: u64, n0: u64, alpha: f64) -> Result<Interval, AbError> {
    let w1 = wilson(k1, n1, alpha)?;
    let w0 = wilson(k0, n0, alpha)?;
    let (p1, p0) = (k1 as f64 / n1 as f64, k0 as f64 / n0 as f64);
    let d = p1 - p0;
    Ok(Interval {
        low: d - ((p1 - w1.low).powi(2) + (w0.high - p0).powi(2)).sqrt(),
        high: d + ((w1.high - p1).powi(2) + (p0 - w0.low).powi(2)).sqrt(),
    })
}

/// A test statistic and its two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    pub statistic: f64,
    pub p_value: f64,
}

/// Two-proportion z-test of `p1 = p0` with the pooled variance (statsmodels
/// `proportions_ztest`). `None` when every learner churned or none did (the
/// pooled variance is 0: there is nothing to test).
pub fn two_proportion_z(k1: u64, n1: u64, k0: u64, n0: u64) -> Result<Option<Test>, AbError> {
    check_count(k1, n1)?;
    check_count(k0, n0)?;
    let (p1, p0) = (k1 as f64 / n1 as f64, k0 as f64 / n0 as f64);
    let pooled = (k1 + k0) as f64 / (n1 + n0) as f64;
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n0 as f64);
    if variance <= 0.0 {
        return Ok(None);
    }
    let z = (p1 - p0) / variance.sqrt();
    Ok(Some(Test {
        statistic: z,
        p_value: 2.0 * normal().sf(z.abs()),
    }))
}

/// Holm's step-down adjustment of p-values (statsmodels `multipletests(method="holm")`),
/// in the order given.
pub fn holm(p_values: &[f64]) -> Result<Vec<f64>, AbError> {
    if let Some(p) = p_values.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(AbError::Invalid(format!("p-value {p} is not in [0, 1]")));
    }
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0_f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    Ok(adjusted)
}

/// Sample-ratio mismatch: Pearson's chi-square of the observed arm counts
/// against the planned shares (or, under logged propensities, each arm's sum
/// of propensities), scipy's `chisquare`. Shares are normalised.
pub fn sample_ratio_mismatch(observed: &[u64], planned: &[f64]) -> Result<Test, AbError> {
    if observed.len() != planned.len() || observed.len() < 2 {
        return Err(AbError::Invalid(format!(
            "{} arm counts for {} planned shares; need the same number, at least 2",
            observed.len(),
            planned.len()
        )));
    }
    if let Some(s) = planned.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(AbError::Invalid(format!(
            "planned share {s} is not a positive number"
        )));
    }
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return Err(AbError::Invalid("no learners were assigned".into()));
    }
    let share_sum: f64 = planned.iter().sum();
    let statistic: f64 = observed
        .iter()
        .zip(planned)
        .map(|(&o, &s)| {
            let expected = total as f64 * s / share_sum;
            (o as f64 - expected).powi(2) / expected
        })
        .sum();
    let df = (observed.len() - 1) as f64;
    let chi2 = ChiSquared::new(df).map_err(|e| AbError::Invalid(e.to_string()))?;
    Ok(Test {
        statistic,
        p_value: chi2.sf(statistic),
    })
}

/// Sample-ratio mismatch under logged, varying propensities (targeted
/// assignment), when only the propensity of the arm received is logged:
/// for every arm, the Horvitz–Thompson count Σ 1/p over its learners
/// estimates the number of learners, with variance Σ (1 − p)/p². The
/// statistic is the largest |z| over arms; its p-value is Bonferroni-adjusted
/// over the arms. Learners logged with propensity 1 could only get their arm
/// (e.g. not eligible for exploration) and are left out: the count is over
/// the learners for whom every arm was possible.
pub fn propensity_ratio_mismatch(
    arm: &[usize],
    propensity: &[f64],
    arms: usize,
) -> Result<Test, AbError> {
    if arm.len() != propensity.len() || arm.is_empty() || arms < 2 {
        return Err(AbError::Invalid(format!(
            "{} arms and {} propensities for {arms} arms: need one of each per learner and 2 arms",
            arm.len(),
            propensity.len()
        )));
    }
    if let Some(i) =
        (0..arm.len()).find(|&i| !(propensity[i] > 0.0 && propensity[i] <= 1.0) || arm[i] >= arms)
    {
        return Err(AbError::Invalid(format!(
            "learner {i}: arm {} with propensity {} (need an arm below {arms} and a propensity in (0, 1])",
            arm[i], propensity[i]
        )));
    }
    let n = propensity.iter().filter(|&&p| p < 1.0).count() as f64;
    if n == 0.0 {
        return Ok(Test {
            statistic: 0.0,
            p_value: 1.0,
        });
    }
    let mut worst = 0.0f64;
    for a in 0..arms {
        let (mut count, mut variance) = (0.0, 0.0);
        for (&g, &p) in arm.iter().zip(propensity) {
            if g == a && p < 1.0 {
                count += 1.0 / p;
                variance += (1.0 - p) / (p * p);
            }
        }
        let z = if variance > 0.0 {
            (count - n) / variance.sqrt()
        } else if count == n {
            0.0
        } else {
            f64::INFINITY
        };
        worst = worst.max(z.abs());
    }
    Ok(Test {
        statistic: worst,
        p_value: (arms as f64 * 2.0 * normal().sf(worst)).min(1.0),
    })
}

/// Cohen's h between two proportions (statsmodels `proportion_effectsize`).
pub fn cohens_h(p1: f64, p2: f64) -> f64 {
    2.0 * p1.sqrt().asin() - 2.0 * p2.sqrt().asin()
}

/// Learners per arm to detect a churn reduction of `mde` (absolute) from a
/// control rate of `baseline`, two-sided at `alpha` split over `treated_arms`
/// comparisons (Bonferroni, Holm's worst case), with the given power: the
/// normal approximation on Cohen's h that statsmodels' `NormalIndPower`
/// solves (equal arms). Returned unrounded; round up to plan.
pub fn learners_per_arm(
    baseline: f64,
    mde: f64,
    alpha: f64,
    power: f64,
    treated_arms: usize,
) -> Result<f64, AbError> {
    if !(baseline > 0.0 && baseline < 1.0) {
        return Err(AbError::Invalid(format!(
            "baseline rate must be in (0, 1), got {baseline}"
        )));
    }
    if !(mde > 0.0 && mde < baseline) {
        return Err(AbError::Invalid(format!(
            "the detectable reduction must be in (0, baseline = {baseline}), got {mde}"
        )));
    }
    if !(power > 0.0 && power < 1.0) || treated_arms == 0 {
        return Err(AbError::Invalid(format!(
            "power must be in (0, 1) and there must be a treated arm, got {power} and {treated_arms}"
        )));
    }
    let crit = critical(alpha / treated_arms as f64)?;
    let h = cohens_h(baseline, baseline - mde).abs();
    let normal = normal();
    let power_at = |n: f64| {
        let shift = h * (n / 2.0).sqrt();
        normal.sf(crit - shift) + normal.cdf(-crit - shift)
    };
    // Power grows with n: bracket, then bisect to machine precision.
    let (mut low, mut high) = (1e-9_f64, 2.0_f64);
    while power_at(high) < power {
        high *= 2.0;
        if high > 1e15 {
            return Err(AbError::Invalid(
                "the effect is too small to plan for".into(),
            ));
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (low + high);
        if power_at(mid) < power {
            low = mid;
        } else {
            high = mid;
        }
        if high - low <= 1e-12 * high {
            break;
        }
    }
    Ok(0.5 * (low + high))
}

/// A CUPED-adjusted difference in churn between a treated arm and control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cuped {
    /// The coefficient of the covariate, cov(y, x) / var(x) over both arms.
    pub theta: f64,
    /// Treated − control of the adjusted outcome (same expectation as the raw difference).
    pub difference: f64,
    pub interval: Interval,
    pub p_value: f64,
    /// 1 − (adjusted variance of the difference) / (unadjusted variance).
    pub variance_reduction: f64,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn sample_variance(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() as f64 - 1.0)
}

/// CUPED (Deng et al., 2013): the outcome `y` (1 = churned) minus θ times the
/// centred pre-period covariate `x` (e.g. active days in the 30 days before
/// assignment), θ pooled over both arms; the difference of adjusted means
/// with a Welch normal interval at `alpha`. The covariate must be measured
/// before assignment, or the adjustment can absorb the effect.
pub fn cuped(
    treated: (&[f64], &[f64]),
    control: (&[f64], &[f64]),
    alpha: f64,
) -> Result<Cuped, AbError> {
    let z = critical(alpha)?;
    let ((y1, x1), (y0, x0)) = (treated, control);
    if y1.len() != x1.len() || y0.len() != x0.len() || y1.len() < 2 || y0.len() < 2 {
        return Err(AbError::Invalid(format!(
            "CUPED needs an outcome and a covariate per learner and 2 learners per arm; got {}/{} treated and {}/{} control",
            y1.len(),
            x1.len(),
            y0.len(),
            x0.len()
        )));
    }
    if let Some(v) = x1
        .iter()
        .chain(x0)
        .chain(y1)
        .chain(y0)
        .find(|v| !v.is_finite())
    {
        return Err(AbError::Invalid(format!(
            "CUPED: {v} is not a finite number"
        )));
    }
    let (ys, xs): (Vec<f64>, Vec<f64>) = (
        y1.iter().chain(y0).copied().collect(),
        x1.iter().chain(x0).copied().collect(),
    );
    let (my, mx) = (mean(&ys), mean(&xs));
    let covariance: f64 = ys.iter().zip(&xs).map(|(y, x)| (y - my) * (x - mx)).sum();
    let spread: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let theta = if spread > 0.0 {
        covariance / spread
    } else {
        0.0
    };
    let adjust = |y: &[f64], x: &[f64]| -> Vec<f64> {
        y.iter().zip(x).map(|(y, x)| y - theta * (x - mx)).collect()
    };
    let (a1, a0) = (adjust(y1, x1), adjust(y0, x0));
    let (n1, n0) = (y1.len() as f64, y0.len() as f64);
    let adjusted = sample_variance(&a1) / n1 + sample_variance(&a0) / n0;
    let raw = sample_variance(y1) / n1 + sample_variance(y0) / n0;
    let difference = mean(&a1) - mean(&a0);
    let se = adjusted.sqrt();
    Ok(Cuped {
        theta,
        difference,
        interval: Interval {
            low: difference - z * se,
            high: difference + z * se,
        },
        p_value: if se > 0.0 {
            2.0 * normal().sf((difference / se).abs())
        } else {
            f64::NAN
        },
        variance_reduction: if raw > 0.0 { 1.0 - adjusted / raw } else { 0.0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_values() {
        // Wilson for 0/10 starts at 0; for 10/10 ends at 1.
        let w = wilson(0, 10, 0.05).unwrap();
        assert!(w.low.abs() < 1e-15 && w.high > 0.2 && w.high < 0.35);
        let w = wilson(10, 10, 0.05).unwrap();
        assert!((w.high - 1.0).abs() < 1e-15);
        assert!(wilson(11, 10, 0.05).is_err() && wilson(0, 0, 0.05).is_err());
        assert!(two_proportion_z(0, 10, 0, 20).unwrap().is_none());
        assert_eq!(holm(&[0.01, 0.04, 0.03]).unwrap(), vec![0.03, 0.06, 0.06]);
        assert!(holm(&[1.5]).is_err());
        assert!(sample_ratio_mismatch(&[10], &[1.0]).is_err());
        assert!(learners_per_arm(0.2, 0.3, 0.05, 0.8, 1).is_err());
    }
}
