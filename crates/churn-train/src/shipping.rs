//! What `churn train` ships for one family: the split's fit, its rolling-origin
//! backtest, the refit on every labelled row, and what the card says of them.

use rayon::prelude::*;

use crate::training_report::Paired;
use crate::{
    Family, Fitted, Fold, Refitted, Split, Table, TrainConfig, TrainError, backtest,
    backtest_refits, backtest_summary, fit_family, paired_difference, refit_family,
};
use churn_model::{ChurnModel, PreparedModel};

/// Where a family's training is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Boosting rounds of the split's fit (gbdt).
    Boosting,
    /// Backtest folds fitted.
    Backtest,
    /// The refit procedure on each fold, then the refit.
    Refit,
}

/// The rows a refit learns from; `as_of`: the table's times are as-of times
/// (churn data), so the card can say how far the labels reach.
#[derive(Debug, Clone, Copy)]
pub struct RefitRows<'a> {
    pub rows: &'a [usize],
    pub as_of: bool,
}

/// One family as `churn train` ships it.
pub struct Shipped {
    pub family: Family,
    /// The split's fit: the test metrics, charts and explanations.
    pub fitted: Fitted,
    /// The backtest's folds, oldest first (the newest is the split's fit).
    pub backtest: Option<Vec<Fold>>,
    /// The model shipped when there is one.
    pub refit: Option<Refitted>,
}

/// Fits `family` on `split`, backtests it over `folds` (oldest first, the
/// last being `split`; empty: no backtest) and refits it on `refit` rows.
/// Each stage's wall time goes on the fit's phases. `progress` hears
/// (stage, done, total).
#[allow(clippy::too_many_arguments)]
pub fn train_family(
    table: &Table,
    split: &Split,
    folds: &[Split],
    refit: Option<RefitRows<'_>>,
    family: Family,
    config: &TrainConfig,
    progress: &mut dyn FnMut(Stage, usize, usize),
) -> Result<Shipped, TrainError> {
    let rounds = match family {
        Family::Gbdt => config.gbdt.num_iterations,
        Family::Logistic => 0,
    };
    let mut fitted = fit_family(table, split, family, config, &mut |done| {
        progress(Stage::Boosting, done, rounds)
    })?;
    let started = std::time::Instant::now();
    let mut backtest = match folds.split_last() {
        Some((newest, older)) if newest == split => {
            let mut done = backtest(table, older, family, config, &mut |k| {
                progress(Stage::Backtest, k, older.len())
            })?;
            done.push(Fold::of_fitted(split, &fitted));
            fitted.phases.push(phase("backtest", started));
            Some(done)
        }
        Some(_) => {
            return Err(TrainError::Split(
                "the newest backtest fold is not the split".into(),
            ));
        }
        None => None,
    };
    let refit = match refit {
        Some(RefitRows { rows, as_of }) => {
            let started = std::time::Instant::now();
            // The refit procedure is scored on every fold (the split alone
            // without a backtest): that is the refit's estimate.
            let (splits, mut scored): (Vec<&Split>, Vec<Fold>) = match backtest.take() {
                Some(done) => (folds.iter().collect(), done),
                None => (vec![split], vec![Fold::of_fitted(split, &fitted)]),
            };
            let steps = scored.len() + 1;
            backtest_refits(table, &splits, &mut scored, family, config, &mut |k| {
                progress(Stage::Refit, k, steps)
            })?;
            let mut refit = refit_family(table, rows, family, config, &scored, &mut |_| {})?;
            if as_of {
                let last = rows.iter().map(|&i| table.as_of[i]).max();
                refit.summary["labelled_through"] =
                    serde_json::json!(last.map(churn_core::format_timestamp));
            }
            progress(Stage::Refit, steps, steps);
            if !folds.is_empty() {
                backtest = Some(scored);
            }
            fitted.phases.push(phase("refit", started));
            Some(refit)
        }
        None => None,
    };
    Ok(Shipped {
        family,
        fitted,
        backtest,
        refit,
    })
}

fn phase(name: &str, started: std::time::Instant) -> churn_model::artifact::PhaseTime {
    churn_model::artifact::PhaseTime {
        phase: name.into(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The paired comparison of the first two families' backtests, named by `name`.
pub fn pair(
    shipped: &[Shipped],
    name: impl Fn(Family) -> String,
    seed: u64,
) -> Result<Option<Paired>, TrainError> {
    match shipped {
        [a, b, ..] => match (&a.backtest, &b.backtest) {
            (Some(x), Some(y)) => Ok(Some(Paired {
                a: name(a.family),
                b: name(b.family),
                auc_difference: paired_difference(x, y, seed)?,
            })),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

impl Shipped {
    /// The model shipped (the refit, else the split's fit), its parameters
    /// and how its calibrator was chosen.
    pub fn model(&self) -> (&ChurnModel, &serde_json::Value, &serde_json::Value) {
        match &self.refit {
            Some(r) => (&r.model, &r.parameters, &r.calibration),
            None => (
                &self.fitted.model,
                &self.fitted.parameters,
                &self.fitted.calibration,
            ),
        }
    }

    /// The card's `metrics` of model `name`: the split's test and validation
    /// metrics, by segment, importance, the backtest (with the paired
    /// difference from this model's side) and the refit.
    pub fn metrics(&self, name: &str, paired: Option<&Paired>) -> serde_json::Value {
        let fitted = &self.fitted;
        let mut metrics = serde_json::json!({
            "test": fitted.test,
            "valid": fitted.valid,
            "test_by_segment": fitted.by_segment,
            "importance_mean_abs_contribution": fitted.importance,
        });
        if let Some(folds) = &self.backtest {
            let mut summary = backtest_summary(folds);
            if let Some(p) = paired {
                let mine = p.a == name;
                let d = &p.auc_difference;
                let (estimate, low, high) = if mine {
                    (d.estimate, d.low, d.high)
                } else {
                    (-d.estimate, -d.high, -d.low)
                };
                summary["paired_roc_auc_difference"] = serde_json::json!({
                    "versus": if mine { &p.b } else { &p.a },
                    "estimate": estimate,
                    "low": low,
                    "high": high,
                    "method": "mean over folds of this model's ROC-AUC minus the other's (the refit procedure's when both are refitted, else the fold models'); paired percentile bootstrap (1,000 resamples of each fold's test rows, both models on the same draws)",
                });
            }
            metrics["backtest"] = summary;
        }
        if let Some(refit) = &self.refit {
            metrics["refit"] = refit.summary.clone();
        }
        metrics
    }

    /// The drift reference: the features of the split's test rows and the
    /// shipped model's probabilities on them.
    pub fn reference(
        &self,
        table: &Table,
        split: &Split,
    ) -> Result<churn_model::drift::TrainingReference, TrainError> {
        let probabilities = match &self.refit {
            Some(r) => {
                let prepared = PreparedModel::new(r.model.clone()).map_err(TrainError::Model)?;
                split
                    .test
                    .par_iter()
                    .map(|&i| {
                        let mut categories = Vec::new();
                        prepared
                            .probability(&table.input(i, &mut categories))
                            .map_err(TrainError::Model)
                    })
                    .collect::<Result<Vec<f64>, _>>()?
            }
            None => self.fitted.test_probabilities.clone(),
        };
        Ok(table.reference(&split.test, &probabilities))
    }

    /// What `churn train` says of the backtest, when there is one.
    pub fn backtest_line(&self) -> Option<String> {
        let folds = self.backtest.as_ref()?;
        let aucs: Vec<String> = folds
            .iter()
            .map(|f| format!("{:.4}", f.test.roc_auc.estimate))
            .collect();
        let summary = backtest_summary(folds);
        let stat = |metric: &str, part: &str| summary[metric][part].as_f64().unwrap_or(f64::NAN);
        Some(format!(
            "backtest over {} folds: AUC {:.4} ± {:.4} (by fold, oldest first: {}), ECE {:.4} ± {:.4}",
            folds.len(),
            stat("roc_auc", "mean"),
            stat("roc_auc", "sd"),
            aucs.join(", "),
            stat("ece", "mean"),
            stat("ece", "sd"),
        ))
    }

    /// What `churn train` says of the refit (its calibrator named
    /// `calibration`), when there is one: its rows and its estimate.
    pub fn refit_line(&self, calibration: &str) -> Option<String> {
        let refit = self.refit.as_ref()?;
        let newest = &refit.estimate;
        let auc = &newest.test.roc_auc;
        let by_fold = self
            .backtest
            .as_ref()
            .filter(|folds| folds.len() > 1)
            .map(|folds| {
                let aucs: Vec<String> = folds
                    .iter()
                    .filter_map(|f| f.refit.as_ref())
                    .map(|r| format!("{:.4}", r.test.roc_auc.estimate))
                    .collect();
                format!(" (by fold, oldest first: {})", aucs.join(", "))
            })
            .unwrap_or_default();
        let estimate = format!(
            "; its estimate, the refit procedure on the newest fold: AUC {:.4} [{:.4}, {:.4}]  log loss {:.4}  ECE {:.4}{by_fold}",
            auc.estimate, auc.low, auc.high, newest.test.log_loss, newest.test.ece
        );
        Some(format!(
            "shipped: refitted on all {} labelled examples{}{estimate}; calibration {calibration} fitted out of fold",
            refit.summary["rows"],
            refit.summary["labelled_through"]
                .as_str()
                .map_or_else(String::new, |t| format!(" through {t}")),
        ))
    }
}
