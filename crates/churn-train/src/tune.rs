//! `churn tune`: a seeded search over the main parameters of one family,
//! scored by the rolling-origin backtest, with successive halving.
//!
//! Every candidate is drawn up front from the one seed. Rung 0 scores them
//! all on the newest fold alone; each later rung keeps the best third
//! (`ETA`) and scores them on one more fold, older each time, so the
//! survivors are judged on the whole backtest. The score is the mean test
//! AUC over the folds a candidate was scored on (log loss breaks ties); the
//! winner is the best of the last rung, which always holds the settings
//! given (trial 0), so tuning never returns worse than them on the backtest. Fits are deterministic for the seed,
//! so the search is too, at any thread count.

use churn_html::{Cell, Page};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::{Family, Fold, Split, Table, TrainConfig, TrainError, backtest};

/// Candidates kept from one rung to the next: the best `1 / ETA`.
pub const ETA: usize = 3;

/// One candidate's parameters (the family's only).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Candidate {
    Gbdt {
        num_leaves: usize,
        learning_rate: f64,
        min_data_in_leaf: usize,
        feature_fraction: f64,
        bagging_fraction: f64,
        lambda_l2: f64,
    },
    Logistic {
        c: f64,
    },
}

impl Candidate {
    /// `base` with this candidate's parameters.
    pub fn apply(&self, base: &TrainConfig) -> TrainConfig {
        let mut config = base.clone();
        match *self {
            Candidate::Gbdt {
                num_leaves,
                learning_rate,
                min_data_in_leaf,
                feature_fraction,
                bagging_fraction,
                lambda_l2,
            } => {
                config.gbdt.num_leaves = num_leaves;
                config.gbdt.learning_rate = learning_rate;
                config.gbdt.min_data_in_leaf = min_data_in_leaf;
                config.gbdt.feature_fraction = feature_fraction;
                config.gbdt.bagging_fraction = bagging_fraction;
                config.gbdt.bagging_freq = usize::from(bagging_fraction < 1.0);
                config.gbdt.lambda_l2 = lambda_l2;
            }
            Candidate::Logistic { c } => config.logistic_c = c,
        }
        config
    }

    /// The candidate of `base` itself (the defaults, always tried first).
    fn of(base: &TrainConfig, family: Family) -> Candidate {
        match family {
            Family::Gbdt => Candidate::Gbdt {
                num_leaves: base.gbdt.num_leaves,
                learning_rate: base.gbdt.learning_rate,
                min_data_in_leaf: base.gbdt.min_data_in_leaf,
                feature_fraction: base.gbdt.feature_fraction,
                bagging_fraction: base.gbdt.bagging_fraction,
                lambda_l2: base.gbdt.lambda_l2,
            },
            Family::Logistic => Candidate::Logistic { c: base.logistic_c },
        }
    }

    /// A draw from the search space: log-uniform where the scale matters.
    fn draw(rng: &mut Xoshiro256PlusPlus, family: Family) -> Candidate {
        let log_uniform = |rng: &mut Xoshiro256PlusPlus, low: f64, high: f64| {
            (low.ln() + (high.ln() - low.ln()) * rng.random::<f64>()).exp()
        };
        match family {
            Family::Gbdt => Candidate::Gbdt {
                num_leaves: log_uniform(rng, 7.0, 127.0).round() as usize,
                learning_rate: round_to(log_uniform(rng, 0.01, 0.3), 4),
                min_data_in_leaf: log_uniform(rng, 5.0, 300.0).round() as usize,
                feature_fraction: round_to(0.5 + 0.5 * rng.random::<f64>(), 2),
                bagging_fraction: round_to(0.5 + 0.5 * rng.random::<f64>(), 2),
                lambda_l2: round_to(log_uniform(rng, 1e-3, 30.0), 4),
            },
            Family::Logistic => Candidate::Logistic {
                c: round_to(log_uniform(rng, 1e-3, 100.0), 5),
            },
        }
    }
}

/// Rounded to `digits` significant digits, so the settings read cleanly.
fn round_to(value: f64, digits: i32) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let scale = 10f64.powi(digits - 1 - value.abs().log10().floor() as i32);
    (value * scale).round() / scale
}

/// One candidate's record: what it scored on each rung it reached.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub id: usize,
    pub candidate: Candidate,
    /// The folds it was scored on, newest first: (test as-of, AUC, log loss).
    pub folds: Vec<(String, f64, f64)>,
    /// The last rung it reached (0 = the newest fold only).
    pub rung: usize,
    /// Mean test AUC over its folds.
    pub mean_auc: f64,
    pub mean_log_loss: f64,
}

/// The search: every trial, and the winner (an index into `trials`).
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub family: Family,
    pub trials: Vec<Trial>,
    pub best: usize,
    /// Folds fits made (the budget spent).
    pub fits: usize,
    /// The winner's mean AUC over the folds minus the settings given, paired
    /// on the same test rows, with its bootstrap interval (`None` when the
    /// settings given won). Chosen as the best of many, the winner's edge is
    /// optimistic: an interval that reaches 0 says the search found nothing.
    pub best_minus_given: Option<churn_metrics::Interval>,
}

/// Searches `trials` candidates of `family` (the first is `base`'s own
/// parameters) by successive halving over `folds` (oldest first, as
/// [`crate::backtest_splits`] gives them). `progress` hears each fit.
pub fn tune(
    table: &Table,
    folds: &[Split],
    family: Family,
    base: &TrainConfig,
    trials: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Search, TrainError> {
    if folds.is_empty() || trials == 0 {
        return Err(TrainError::Param(
            "tuning needs at least one fold and one trial".into(),
        ));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(base.seed ^ 0x007E_575E_A2C4);
    let mut records: Vec<Trial> = (0..trials)
        .map(|id| Trial {
            id,
            candidate: if id == 0 {
                Candidate::of(base, family)
            } else {
                Candidate::draw(&mut rng, family)
            },
            folds: Vec::new(),
            rung: 0,
            mean_auc: f64::NAN,
            mean_log_loss: f64::NAN,
        })
        .collect();
    let mut alive: Vec<usize> = (0..trials).collect();
    let mut fits = 0;
    // Every fold scored, by trial: the winner and the settings given are
    // compared on them, paired.
    let mut scored_folds: Vec<Vec<Fold>> = vec![Vec::new(); trials];
    for rung in 0..folds.len() {
        let fold = &folds[folds.len() - 1 - rung];
        for &t in &alive {
            let config = records[t].candidate.apply(base);
            let scored: Vec<Fold> = backtest(
                table,
                std::slice::from_ref(fold),
                family,
                &config,
                &mut |_| {},
            )?;
            fits += 1;
            progress(fits);
            let record = &mut records[t];
            for f in scored {
                scored_folds[t].push(f.clone());
                record.folds.push((
                    f.test_as_of.join(", "),
                    f.test.roc_auc.estimate,
                    f.test.log_loss,
                ));
            }
            record.rung = rung;
            let n = record.folds.len() as f64;
            record.mean_auc = record.folds.iter().map(|f| f.1).sum::<f64>() / n;
            record.mean_log_loss = record.folds.iter().map(|f| f.2).sum::<f64>() / n;
        }
        alive.sort_by(|&a, &b| better(&records[a], &records[b]));
        if rung + 1 < folds.len() {
            alive.truncate(alive.len().div_ceil(ETA).max(1));
            // The settings given go on to the last rung: the winner is then
            // never worse than them on the whole backtest.
            if !alive.contains(&0) {
                alive.push(0);
            }
        }
    }
    let best = alive[0];
    let best_minus_given = if best == 0 {
        None
    } else {
        Some(crate::paired_difference(
            &scored_folds[best],
            &scored_folds[0],
            base.seed,
        )?)
    };
    Ok(Search {
        family,
        trials: records,
        best,
        fits,
        best_minus_given,
    })
}

/// Higher mean AUC first; then lower log loss; then the earlier trial.
fn better(a: &Trial, b: &Trial) -> std::cmp::Ordering {
    b.mean_auc
        .total_cmp(&a.mean_auc)
        .then(a.mean_log_loss.total_cmp(&b.mean_log_loss))
        .then(a.id.cmp(&b.id))
}

/// The winner's settings as `churn train --config` reads them.
pub fn settings_toml(search: &Search) -> String {
    let best = &search.trials[search.best];
    let (section, mut keys) = match toml::Table::try_from(&best.candidate) {
        Ok(keys) => (search.family.name(), keys),
        Err(e) => return format!("# cannot write trial {}: {e}\n", best.id),
    };
    if let Candidate::Gbdt {
        bagging_fraction, ..
    } = best.candidate
    {
        // As `Candidate::apply` sets it.
        keys.insert(
            "bagging_freq".into(),
            toml::Value::Integer(i64::from(bagging_fraction < 1.0)),
        );
    }
    format!(
        "# churn tune: trial {} of {}, mean test AUC {:.4} over {} backtest folds\n{}",
        best.id,
        search.trials.len(),
        best.mean_auc,
        best.folds.len(),
        toml::to_string(&toml::Table::from_iter([(
            section.to_owned(),
            toml::Value::Table(keys),
        )]))
        .unwrap_or_default()
    )
}

/// Every trial, best first, with its parameters and scores by fold.
pub fn trials_report(searches: &[Search], folds: usize) -> String {
    let mut page = Page::new("churn tune: trials");
    page.note(&format!(
        "Successive halving over {folds} backtest folds: every candidate is scored on the newest fold, the best third of each rung on one more (older) fold. Score: mean test ROC-AUC over the folds a candidate reached (log loss breaks ties). Trial 0 is the settings given."
    ));
    for search in searches {
        page.heading(&format!("{} ({} fits)", search.family.name(), search.fits));
        let mut order: Vec<&Trial> = search.trials.iter().collect();
        order.sort_by(|a, b| {
            b.rung
                .cmp(&a.rung)
                .then(b.mean_auc.total_cmp(&a.mean_auc))
                .then(a.id.cmp(&b.id))
        });
        let rows: Vec<Vec<Cell>> = order
            .iter()
            .map(|t| {
                vec![
                    Cell::Text(format!(
                        "{}{}",
                        t.id,
                        if t.id == search.trials[search.best].id {
                            " (best)"
                        } else {
                            ""
                        }
                    )),
                    Cell::Text(serde_json::to_string(&t.candidate).unwrap_or_default()),
                    Cell::Number(t.folds.len() as f64, 0),
                    Cell::Number(t.mean_auc, 4),
                    Cell::Number(t.mean_log_loss, 4),
                    Cell::Text(
                        t.folds
                            .iter()
                            .map(|(at, auc, _)| format!("{at}: {auc:.4}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                ]
            })
            .collect();
        page.table(
            &[
                "trial",
                "parameters",
                "folds",
                "mean AUC",
                "mean log loss",
                "AUC by fold (newest first)",
            ],
            &rows,
        );
    }
    page.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_the_space_and_round_cleanly() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for _ in 0..500 {
            match Candidate::draw(&mut rng, Family::Gbdt) {
                Candidate::Gbdt {
                    num_leaves,
                    learning_rate,
                    min_data_in_leaf,
                    feature_fraction,
                    bagging_fraction,
                    lambda_l2,
                } => {
                    assert!((7..=127).contains(&num_leaves));
                    assert!((0.01..=0.3).contains(&learning_rate));
                    assert!((5..=300).contains(&min_data_in_leaf));
                    assert!((0.5..=1.0).contains(&feature_fraction));
                    assert!((0.5..=1.0).contains(&bagging_fraction));
                    assert!((1e-3..=30.0).contains(&lambda_l2));
                }
                Candidate::Logistic { .. } => panic!("a gbdt draw"),
            }
        }
        assert_eq!(round_to(0.0123456, 3), 0.0123);
        assert_eq!(round_to(123.456, 4), 123.5);
    }

    #[test]
    fn the_order_prefers_auc_then_log_loss_then_the_earlier_trial() {
        let trial = |id, mean_auc, mean_log_loss| Trial {
            id,
            candidate: Candidate::Logistic { c: 1.0 },
            folds: Vec::new(),
            rung: 0,
            mean_auc,
            mean_log_loss,
        };
        let mut trials = [
            trial(0, 0.8, 0.3),
            trial(1, 0.9, 0.4),
            trial(2, 0.9, 0.3),
            trial(3, 0.9, 0.3),
        ];
        trials.sort_by(better);
        assert_eq!(trials.map(|t| t.id), [2, 3, 1, 0]);
    }
}
