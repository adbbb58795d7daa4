//! Who an intervention helps: uplift metrics (scikit-uplift's definitions)
//! and a cross-fitted T-learner on churn-gbdt.
//!
//! Convention (DESIGN.md): uplift = churn reduction = P(churn | control) −
//! P(churn | treated), so positive is good. The metrics take the *retained*
//! outcome (1 − churned) so that scikit-uplift's "treated response − control
//! response" is exactly that churn reduction.

use churn_gbdt::{Predictor, Schema, TrainData, ValidGbdtParams};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::AbError;

/// One evaluated learner for the uplift metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The predicted uplift (churn reduction if treated).
    pub uplift: f64,
    pub treated: bool,
    pub retained: bool,
}

/// A curve: x = number of learners targeted (best-ranked first), y = the curve value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Curve {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

/// Which cumulative statistic a curve accumulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// (treated response rate − control response rate) × targeted.
    Uplift,
    /// treated responders − control responders × treated / control.
    Qini,
}

fn check(samples: &[Scored]) -> Result<(), AbError> {
    if !samples.iter().any(|s| s.treated) || samples.iter().all(|s| s.treated) {
        return Err(AbError::Invalid(
            "uplift metrics need both treated and control learners".into(),
        ));
    }
    if let Some(i) = samples.iter().position(|s| !s.uplift.is_finite()) {
        return Err(AbError::Invalid(format!(
            "learner {i}: the uplift score {} is not a finite number",
            samples[i].uplift
        )));
    }
    Ok(())
}

/// The best-ranked first, ties in reverse input order (what numpy's stable
/// ascending argsort reversed gives, so top-k matches scikit-uplift).
fn ranking(scores: impl Iterator<Item = f64>) -> Vec<usize> {
    let scores: Vec<f64> = scores.collect();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(b.cmp(&a)));
    order
}

fn curve(samples: &[Scored], scores: &[f64], kind: Kind) -> Curve {
    let order = ranking(scores.iter().copied());
    let (mut x, mut y) = (vec![0.0], vec![0.0]);
    let (mut treated, mut treated_responders, mut control_responders) = (0.0f64, 0.0f64, 0.0f64);
    for (position, &i) in order.iter().enumerate() {
        let s = &samples[i];
        let response = f64::from(u8::from(s.retained));
        if s.treated {
            treated += 1.0;
            treated_responders += response;
        } else {
            control_responders += response;
        }
        let last_of_tie = order
            .get(position + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if !last_of_tie {
            continue;
        }
        let all = (position + 1) as f64;
        let control = all - treated;
        let value = match kind {
            Kind::Uplift => {
                let rate_t = if treated > 0.0 {
                    treated_responders / treated
                } else {
                    0.0
                };
                let rate_c = if control > 0.0 {
                    control_responders / control
                } else {
                    0.0
                };
                (rate_t - rate_c) * all
            }
            Kind::Qini => {
                let ratio = if control > 0.0 {
                    treated / control
                } else {
                    0.0
                };
                treated_responders - control_responders * ratio
            }
        };
        x.push(all);
        y.push(value);
    }
    Curve { x, y }
}

fn trapezoid(c: &Curve) -> f64 {
    c.x.windows(2)
        .zip(c.y.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

/// The Qini curve (scikit-uplift `qini_curve`).
pub fn qini_curve(samples: &[Scored]) -> Result<Curve, AbError> {
    check(samples)?;
    let scores: Vec<f64> = samples.iter().map(|s| s.uplift).collect();
    Ok(curve(samples, &scores, Kind::Qini))
}

/// The uplift curve (scikit-uplift `uplift_curve`).
pub fn uplift_curve(samples: &[Scored]) -> Result<Curve, AbError> {
    check(samples)?;
    let scores: Vec<f64> = samples.iter().map(|s| s.uplift).collect();
    Ok(curve(samples, &scores, Kind::Uplift))
}

/// Area between a curve and the random-targeting diagonal, as a share of the
/// same area for the perfect ranking.
fn normalised_area(actual: &Curve, perfect: &Curve) -> f64 {
    let (end_x, end_y) = (
        perfect.x.last().copied().unwrap_or(0.0),
        perfect.y.last().copied().unwrap_or(0.0),
    );
    let baseline = end_x * end_y / 2.0;
    (trapezoid(actual) - baseline) / (trapezoid(perfect) - baseline)
}

/// The Qini coefficient (scikit-uplift `qini_auc_score`, `negative_effect=True`):
/// the area between the Qini curve and random targeting over that of the
/// perfect ranking.
pub fn qini_coefficient(samples: &[Scored]) -> Result<f64, AbError> {
    let actual = qini_curve(samples)?;
    let perfect_scores: Vec<f64> = samples
        .iter()
        .map(|s| {
            let y = f64::from(u8::from(s.retained));
            if s.treated { y } else { -y }
        })
        .collect();
    let perfect = curve(samples, &perfect_scores, Kind::Qini);
    Ok(normalised_area(&actual, &perfect))
}

/// The area under the uplift curve, normalised as scikit-uplift's
/// `uplift_auc_score` does (random = 0, perfect = 1).
pub fn auuc(samples: &[Scored]) -> Result<f64, AbError> {
    let actual = uplift_curve(samples)?;
    let control_responders = samples.iter().filter(|s| !s.treated && s.retained).count();
    let treated_non_responders = samples.iter().filter(|s| s.treated && !s.retained).count();
    let perfect_scores: Vec<f64> = samples
        .iter()
        .map(|s| {
            let summand = if control_responders > treated_non_responders {
                s.retained
            } else {
                s.treated
            };
            2.0 * f64::from(u8::from(s.retained == s.treated)) + f64::from(u8::from(summand))
        })
        .collect();
    let perfect = curve(samples, &perfect_scores, Kind::Uplift);
    Ok(normalised_area(&actual, &perfect))
}

/// Observed uplift among the top `k` share by score: treated retention rate −
/// control retention rate (scikit-uplift `uplift_at_k`, strategy `overall`:
/// the top k of everyone; `by_group`: the top k of each group).
pub fn uplift_at_k(samples: &[Scored], k: f64, by_group: bool) -> Result<f64, AbError> {
    check(samples)?;
    if !(k > 0.0 && k < 1.0) {
        return Err(AbError::Invalid(format!("k = {k}: must be in (0, 1)")));
    }
    let order = ranking(samples.iter().map(|s| s.uplift));
    let rate = |chosen: &mut dyn Iterator<Item = &Scored>| {
        let (mut n, mut r) = (0.0, 0.0);
        for s in chosen {
            n += 1.0;
            r += f64::from(u8::from(s.retained));
        }
        r / n
    };
    let ranked = order.iter().map(|&i| &samples[i]);
    let (treated_rate, control_rate) = if by_group {
        let n_t = samples.iter().filter(|s| s.treated).count() as f64;
        let n_c = samples.len() as f64 - n_t;
        let (take_t, take_c) = ((n_t * k) as usize, (n_c * k) as usize);
        (
            rate(&mut ranked.clone().filter(|s| s.treated).take(take_t)),
            rate(&mut ranked.filter(|s| !s.treated).take(take_c)),
        )
    } else {
        let top = (samples.len() as f64 * k) as usize;
        (
            rate(&mut ranked.clone().take(top).filter(|s| s.treated)),
            rate(&mut ranked.take(top).filter(|s| !s.treated)),
        )
    };
    Ok(treated_rate - control_rate)
}

/// The assigned learners an uplift fit reads: dense gbdt rows, the arm each
/// was given and whether each churned.
#[derive(Debug, Clone, Copy)]
pub struct Assigned<'a> {
    /// Row-major, `schema.names.len()` values per learner.
    pub rows: &'a [f64],
    pub arm: &'a [usize],
    pub churned: &'a [bool],
}

/// One churn model per arm, fitted on that arm's learners and cross-fitted
/// so a learner's modelled outcome under every arm comes from models that
/// never saw it (the "T-learner" of the uplift literature): how it is fitted.
#[derive(Debug, Clone)]
pub struct PerArmModels {
    pub params: ValidGbdtParams,
    /// Cross-fitting folds: a learner is scored only by models that did not see it.
    pub folds: usize,
    /// A share of each model's training rows held out for early stopping.
    pub validation_share: f64,
    pub seed: u64,
}

fn subset(learners: &Assigned<'_>, width: usize, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let mut x = Vec::with_capacity(rows.len() * width);
    let mut y = Vec::with_capacity(rows.len());
    for &i in rows {
        x.extend_from_slice(&learners.rows[i * width..(i + 1) * width]);
        y.push(f64::from(u8::from(learners.churned[i])));
    }
    (x, y)
}

impl PerArmModels {
    /// Settings for experiment-sized data (hundreds to thousands of learners
    /// per arm): four-leaf trees with at least 50 learners a leaf (on the
    /// simulator, deeper trees made noisier uplift and worse policies), early
    /// stopping on a fifth of each model's rows, five folds.
    pub fn for_experiments(seed: u64) -> Result<PerArmModels, AbError> {
        let params = churn_gbdt::GbdtParams {
            num_iterations: 400,
            learning_rate: 0.05,
            num_leaves: 4,
            min_data_in_leaf: 50,
            lambda_l2: 1.0,
            early_stopping_rounds: Some(30),
            seed,
            ..churn_gbdt::GbdtParams::default()
        }
        .check()
        .map_err(|e| AbError::Invalid(format!("uplift model parameters: {e}")))?;
        Ok(PerArmModels {
            params,
            folds: 5,
            validation_share: 0.2,
            seed,
        })
    }

    /// Fits one churn model on `rows` (all given the same arm), early stopping
    /// on a seeded share of them.
    pub fn fit_arm(
        &self,
        schema: &Schema,
        learners: &Assigned<'_>,
        rows: &[usize],
        seed: u64,
    ) -> Result<churn_gbdt::Model, AbError> {
        let width = schema.names.len();
        let mut shuffled = rows.to_vec();
        shuffled.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(seed));
        let held = ((shuffled.len() as f64 * self.validation_share) as usize).max(1);
        if shuffled.len() < held + 20 {
            return Err(AbError::Invalid(format!(
                "{} learners: too few to fit an uplift model (need at least {})",
                rows.len(),
                held + 20
            )));
        }
        let (valid, train) = shuffled.split_at(held);
        let (x_train, y_train) = subset(learners, width, train);
        let (x_valid, y_valid) = subset(learners, width, valid);
        let data = TrainData {
            features: &x_train,
            labels: &y_train,
            weights: None,
        };
        let valid_data = TrainData {
            features: &x_valid,
            labels: &y_valid,
            weights: None,
        };
        let (model, _) = churn_gbdt::train(&self.params, schema, &data, Some(&valid_data))
            .map_err(|e| AbError::Invalid(format!("uplift model: {e}")))?;
        Ok(model)
    }

    /// Out-of-fold churn probabilities of every learner under every arm:
    /// `result[i * arms + a]`. Folds are stratified by arm and drawn with the seed.
    pub fn cross_fit(
        &self,
        schema: &Schema,
        learners: &Assigned<'_>,
        arms: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f64>, AbError> {
        let n = learners.arm.len();
        let width = schema.names.len();
        if learners.rows.len() != n * width || learners.churned.len() != n {
            return Err(AbError::Invalid(format!(
                "{} values, {} arms and {} outcomes for {n} learners of {width} features",
                learners.rows.len(),
                learners.arm.len(),
                learners.churned.len()
            )));
        }
        if self.folds < 2 {
            return Err(AbError::Invalid(
                "cross-fitting needs at least 2 folds".into(),
            ));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let mut fold = vec![0usize; n];
        for a in 0..arms {
            let mut mine: Vec<usize> = (0..n).filter(|&i| learners.arm[i] == a).collect();
            mine.shuffle(&mut rng);
            for (position, &i) in mine.iter().enumerate() {
                fold[i] = position % self.folds;
            }
        }
        let mut out = vec![f64::NAN; n * arms];
        let mut row = Vec::with_capacity(width);
        for f in 0..self.folds {
            for a in 0..arms {
                let train: Vec<usize> = (0..n)
                    .filter(|&i| fold[i] != f && learners.arm[i] == a)
                    .collect();
                let seed = self.seed ^ ((f * arms + a) as u64 + 1).wrapping_mul(0x9E37_79B9);
                let model = self.fit_arm(schema, learners, &train, seed)?;
                let predictor = Predictor::new(&model);
                for i in (0..n).filter(|&i| fold[i] == f) {
                    row.clear();
                    row.extend_from_slice(&learners.rows[i * width..(i + 1) * width]);
                    out[i * arms + a] = predictor.predict_proba(&row);
                }
                progress(1);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(uplift: f64, treated: bool, retained: bool) -> Scored {
        Scored {
            uplift,
            treated,
            retained,
        }
    }

    #[test]
    fn a_perfect_ranking_scores_one_and_its_reverse_scores_below_zero() {
        // Treated retained first, control retained last: the perfect order.
        let samples = vec![
            s(4.0, true, true),
            s(3.0, true, true),
            s(2.0, false, false),
            s(1.0, false, false),
            s(0.0, true, false),
            s(-1.0, false, true),
        ];
        assert!((qini_coefficient(&samples).unwrap() - 1.0).abs() < 1e-12);
        let reversed: Vec<Scored> = samples
            .iter()
            .map(|x| s(-x.uplift, x.treated, x.retained))
            .collect();
        assert!(qini_coefficient(&reversed).unwrap() < 0.0);
    }

    #[test]
    fn metrics_refuse_one_sided_samples() {
        let samples = vec![s(1.0, true, true), s(0.0, true, false)];
        assert!(qini_coefficient(&samples).is_err());
        assert!(uplift_at_k(&[s(1.0, true, true), s(0.0, false, true)], 1.5, false).is_err());
    }
}
