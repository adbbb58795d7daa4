//! Fitting: gbdt (churn-gbdt), logistic (Newton's method, `newton.rs`) and calibration.

use churn_gbdt::{GbdtParams, TrainData, TrainLog};
use churn_model::InputSchema;
use churn_model::calibration::{Calibration, sigmoid};
use churn_model::logistic::{DesignColumn, LogisticModel, Source};

use crate::TrainError;
use crate::table::Table;
use churn_metrics::log_loss;

/// Dense gbdt rows (numbers, then category codes) of `rows`.
pub fn gbdt_rows(table: &Table, schema: &InputSchema, rows: &[usize]) -> Vec<f64> {
    let width = schema.features.len();
    let mut out = Vec::with_capacity(rows.len() * width);
    let mut row = Vec::with_capacity(width);
    for &i in rows {
        let mut categories = Vec::new();
        let input = table.input(i, &mut categories);
        schema.encode_codes(&input, &mut row);
        out.extend_from_slice(&row);
    }
    out
}

fn labels(table: &Table, rows: &[usize]) -> Vec<f64> {
    rows.iter().map(|&i| table.labels[i]).collect()
}

/// Fits gradient-boosted trees on `train`, early stopping on `valid`.
pub fn fit_gbdt(
    table: &Table,
    schema: &InputSchema,
    train: &[usize],
    valid: &[usize],
    params: &GbdtParams,
    progress: &mut dyn FnMut(usize),
) -> Result<(churn_gbdt::Model, TrainLog), TrainError> {
    let checked = params.clone().check().map_err(TrainError::Gbdt)?;
    let gbdt_schema = schema.gbdt_schema();
    let (x_train, y_train) = (gbdt_rows(table, schema, train), labels(table, train));
    let (x_valid, y_valid) = (gbdt_rows(table, schema, valid), labels(table, valid));
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
    churn_gbdt::train_with_progress(&checked, &gbdt_schema, &data, Some(&valid_data), progress)
        .map_err(TrainError::Gbdt)
}

/// A gbdt of exactly `rounds` boosting rounds on `rows`, no validation set
/// (the refit: the number of rounds was chosen by a backtest).
pub fn fit_gbdt_rounds(
    table: &Table,
    schema: &InputSchema,
    rows: &[usize],
    params: &GbdtParams,
    rounds: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<(churn_gbdt::Model, TrainLog), TrainError> {
    let params = GbdtParams {
        num_iterations: rounds.max(1),
        early_stopping_rounds: None,
        ..params.clone()
    };
    let checked = params.check().map_err(TrainError::Gbdt)?;
    let (x, y) = (gbdt_rows(table, schema, rows), labels(table, rows));
    let data = TrainData {
        features: &x,
        labels: &y,
        weights: None,
    };
    churn_gbdt::train_with_progress(&checked, &schema.gbdt_schema(), &data, None, progress)
        .map_err(TrainError::Gbdt)
}

/// A category gets a one-hot column of its own in the logistic design when
/// at least this many of the training rows hold it.
pub const MIN_CATEGORY_ROWS: usize = 10;

/// At most this many one-hot columns per categorical feature: its most
/// frequent categories (ties: vocabulary order).
pub const MAX_CATEGORY_COLUMNS: usize = 100;

/// The logistic design of `schema` fitted on `rows`: columns, medians, means, scales.
///
/// A categorical feature contributes one column per category that at least
/// [`MIN_CATEGORY_ROWS`] training rows hold, at most the
/// [`MAX_CATEGORY_COLUMNS`] most frequent; its other categories read as
/// zeros in every column, as an unseen one does. Newton's method costs the
/// cube of the design's width, so a text column with a value per row (an
/// identifier) made 3,000 rows take minutes and a larger table run out of
/// memory; such a column now adds no columns at all (it carries no
/// information a linear model could generalise from either).
pub fn logistic_design(table: &Table, schema: &InputSchema, rows: &[usize]) -> LogisticModel {
    let n = schema.numeric_len();
    let mut medians = Vec::with_capacity(n);
    let mut columns = Vec::new();
    for j in 0..n {
        let mut values: Vec<f64> = rows
            .iter()
            .map(|&i| table.numeric[i * n + j])
            .filter(|v| !v.is_nan())
            .collect();
        let any_missing = values.len() < rows.len();
        values.sort_by(f64::total_cmp);
        medians.push(median(&values));
        columns.push(DesignColumn {
            feature: j as u32,
            source: Source::Value,
        });
        if any_missing {
            columns.push(DesignColumn {
                feature: j as u32,
                source: Source::Missing,
            });
        }
    }
    let categorical = table.categorical_len();
    for (j, feature) in schema.features.iter().enumerate().skip(n) {
        let mut counts = vec![0usize; feature.categories.len()];
        for &i in rows {
            let code = schema.code(j - n, table.categorical[i * categorical + j - n].as_deref());
            if let Some(count) = (!code.is_nan())
                .then(|| counts.get_mut(code as usize))
                .flatten()
            {
                *count += 1;
            }
        }
        let mut kept: Vec<usize> = (0..counts.len())
            .filter(|&code| counts[code] >= MIN_CATEGORY_ROWS)
            .collect();
        kept.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
        kept.truncate(MAX_CATEGORY_COLUMNS);
        kept.sort_unstable();
        columns.extend(kept.into_iter().map(|code| DesignColumn {
            feature: j as u32,
            source: Source::Category(code as u32),
        }));
    }
    let width = columns.len();
    let mut model = LogisticModel {
        medians,
        columns,
        means: vec![0.0; width],
        scales: vec![1.0; width],
        coefficients: vec![0.0; width],
        intercept: 0.0,
    };
    let raw = raw_design(table, schema, &model, rows);
    for c in 0..width {
        let column = (0..rows.len()).map(|r| raw[r * width + c]);
        let mean = column.clone().sum::<f64>() / rows.len() as f64;
        let variance = column.map(|v| (v - mean) * (v - mean)).sum::<f64>() / rows.len() as f64;
        model.means[c] = mean;
        model.scales[c] = if variance > 0.0 { variance.sqrt() } else { 1.0 };
    }
    model
}

/// Median of sorted values; 0 when there are none (the column is then all missing).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn raw_design(
    table: &Table,
    schema: &InputSchema,
    model: &LogisticModel,
    rows: &[usize],
) -> Vec<f64> {
    let width = model.columns.len();
    let mut raw = Vec::with_capacity(rows.len() * width);
    for &i in rows {
        let mut categories = Vec::new();
        let input = table.input(i, &mut categories);
        raw.extend(
            model
                .columns
                .iter()
                .map(|&c| model.raw_value(schema, c, &input)),
        );
    }
    raw
}

/// Standardised design matrix of `rows` (what the coefficients multiply).
pub fn standardised_design(
    table: &Table,
    schema: &InputSchema,
    model: &LogisticModel,
    rows: &[usize],
) -> Vec<f64> {
    let width = model.columns.len();
    let mut design = raw_design(table, schema, model, rows);
    for (k, v) in design.iter_mut().enumerate() {
        let c = k % width;
        *v = (*v - model.means[c]) / model.scales[c];
    }
    design
}

/// Fits L2-regularised logistic regression with scikit-learn's `C`
/// (minimises `C · Σ log loss + ½ ‖w‖²`, intercept unpenalised) by Newton's method.
pub fn fit_logistic(
    table: &Table,
    schema: &InputSchema,
    rows: &[usize],
    c: f64,
) -> Result<LogisticModel, TrainError> {
    if !(c.is_finite() && c > 0.0) {
        return Err(TrainError::Param(format!(
            "logistic C must be > 0, got {c}"
        )));
    }
    let mut model = logistic_design(table, schema, rows);
    let width = model.columns.len();
    let design = standardised_design(table, schema, &model, rows);
    let y = labels(table, rows);
    let (coefficients, intercept) = crate::newton::fit(&design, width, &y, c)
        .map_err(|e| TrainError::Fit(format!("logistic regression: {e}")))?;
    model.coefficients = coefficients;
    model.intercept = intercept;
    Ok(model)
}

/// Platt scaling by Newton's method: the `(a, b)` maximising the likelihood of
/// `σ(a · margin + b)`.
pub fn fit_platt(margins: &[f64], y: &[f64]) -> Calibration {
    let (mut a, mut b) = (1.0, 0.0);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&m, &t) in margins.iter().zip(y) {
            let p = sigmoid(a * m + b);
            let w = (p * (1.0 - p)).max(1e-12);
            ga += (p - t) * m;
            gb += p - t;
            haa += w * m * m;
            hab += w * m;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() + db.abs() < 1e-12 {
            break;
        }
    }
    Calibration::Platt { a, b }
}

/// Isotonic regression of `y` on `σ(margin)` by pool-adjacent-violators; ties
/// in the probability are averaged first (scikit-learn's IsotonicRegression).
pub fn fit_isotonic(margins: &[f64], y: &[f64]) -> Calibration {
    let mut points: Vec<(f64, f64)> = margins
        .iter()
        .map(|&m| sigmoid(m))
        .zip(y.iter().copied())
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    // (x, sum of y, weight) per distinct x.
    let mut distinct: Vec<(f64, f64, f64)> = Vec::new();
    for (x, t) in points {
        match distinct.last_mut() {
            Some(last) if last.0 == x => {
                last.1 += t;
                last.2 += 1.0;
            }
            _ => distinct.push((x, t, 1.0)),
        }
    }
    // Blocks: (sum, weight, first index, last index).
    let mut blocks: Vec<(f64, f64, usize, usize)> = Vec::new();
    for (i, &(_, sum, weight)) in distinct.iter().enumerate() {
        blocks.push((sum, weight, i, i));
        while blocks.len() > 1 {
            let n = blocks.len();
            let (s1, w1, f1, _) = blocks[n - 2];
            let (s2, w2, _, l2) = blocks[n - 1];
            if s1 / w1 > s2 / w2 {
                blocks.truncate(n - 2);
                blocks.push((s1 + s2, w1 + w2, f1, l2));
            } else {
                break;
            }
        }
    }
    let mut fitted = vec![0.0; distinct.len()];
    for (sum, weight, first, last) in blocks {
        for v in &mut fitted[first..=last] {
            *v = sum / weight;
        }
    }
    Calibration::Isotonic {
        x: distinct.iter().map(|d| d.0).collect(),
        y: fitted,
    }
}

/// Chooses none, Platt or isotonic by 2-fold cross-validated log loss on the
/// validation predictions (fitting and scoring on the same rows would always
/// pick isotonic), then refits the winner on all of them.
pub fn fit_calibration(margins: &[f64], y: &[f64]) -> (Calibration, serde_json::Value) {
    let folds: [Vec<usize>; 2] = [
        (0..margins.len()).filter(|i| i % 2 == 0).collect(),
        (0..margins.len()).filter(|i| i % 2 == 1).collect(),
    ];
    let pick = |rows: &[usize], v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    type Fitter = fn(&[f64], &[f64]) -> Calibration;
    let fitters: [(&str, Fitter); 3] = [
        ("none", |_, _| Calibration::None),
        ("platt", fit_platt),
        ("isotonic", fit_isotonic),
    ];
    let mut scores = Vec::new();
    for (name, fit) in fitters {
        let mut loss = 0.0;
        for k in 0..2 {
            let (fit_rows, score_rows) = (&folds[k], &folds[1 - k]);
            let calibration = fit(&pick(fit_rows, margins), &pick(fit_rows, y));
            let p: Vec<f64> = score_rows
                .iter()
                .map(|&i| calibration.probability(margins[i]))
                .collect();
            loss += log_loss(&p, &pick(score_rows, y)) * score_rows.len() as f64;
        }
        scores.push((name, fit, loss / margins.len() as f64));
    }
    let best = scores
        .iter()
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map_or(fitters[0].1, |s| s.1);
    let report = serde_json::json!({
        "method": "chosen by 2-fold cross-validated log loss on the validation predictions",
        "cv_log_loss": scores.iter().map(|s| (s.0, s.2)).collect::<std::collections::BTreeMap<_, _>>(),
    });
    (best(margins, y), report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_model::Kind;

    #[test]
    fn one_hot_columns_are_the_frequent_categories_and_an_identifier_adds_none() {
        // `wide` has 150 categories, w{k} on 11 + k rows; `tier` a/b/c and a
        // "rare" one on 5 rows; `id` a value per row.
        let mut table = Table {
            features: ["x", "id", "tier", "wide"]
                .iter()
                .enumerate()
                .map(|(j, name)| {
                    let kind = if j == 0 {
                        Kind::Numeric
                    } else {
                        Kind::Categorical
                    };
                    (name.to_string(), kind, String::new())
                })
                .collect(),
            ..Table::default()
        };
        let mut row = 0;
        for k in 0..150 {
            for _ in 0..11 + k {
                let tier = if row < 5 {
                    "rare"
                } else {
                    ["a", "b", "c"][row % 3]
                };
                table.numeric.push(row as f64);
                table.categorical.extend([
                    Some(format!("r{row}")),
                    Some(tier.to_owned()),
                    Some(format!("w{k:03}")),
                ]);
                table.labels.push((row % 2) as f64);
                row += 1;
            }
        }
        let rows: Vec<usize> = (0..table.rows()).collect();
        let schema = table.schema(&rows).unwrap();
        let model = logistic_design(&table, &schema, &rows);
        let mut expected = vec![DesignColumn {
            feature: 0,
            source: Source::Value,
        }];
        // tier's vocabulary is a, b, c, rare: codes 0..3 kept, 3 (5 rows) not.
        expected.extend((0..3).map(|code| DesignColumn {
            feature: 2,
            source: Source::Category(code),
        }));
        // wide's 100 most frequent: w050..w149.
        expected.extend((50..150).map(|code| DesignColumn {
            feature: 3,
            source: Source::Category(code),
        }));
        assert_eq!(model.columns, expected);
        // Fits at once, and a category without a column reads as zeros.
        let fitted = fit_logistic(&table, &schema, &rows, 1.0).unwrap();
        assert_eq!(fitted.columns.len(), 104);
    }

    #[test]
    fn isotonic_pools_violators_and_platt_recovers_a_scaling() {
        let margins: Vec<f64> = [0.1, 0.2, 0.3, 0.4]
            .iter()
            .map(|p: &f64| (p / (1.0 - p)).ln())
            .collect();
        let Calibration::Isotonic { x, y } = fit_isotonic(&margins, &[0.0, 1.0, 0.0, 1.0]) else {
            panic!("isotonic expected");
        };
        assert_eq!(x.len(), 4);
        assert_eq!(y, vec![0.0, 0.5, 0.5, 1.0]);

        // Labels drawn exactly at σ(2m − 1) in expectation: weighted duplicates.
        let mut m = Vec::new();
        let mut t = Vec::new();
        for k in -20..=20 {
            let margin = k as f64 / 10.0;
            let p = sigmoid(2.0 * margin - 1.0);
            let ones = (p * 1000.0).round() as usize;
            for i in 0..1000 {
                m.push(margin);
                t.push(if i < ones { 1.0 } else { 0.0 });
            }
        }
        let Calibration::Platt { a, b } = fit_platt(&m, &t) else {
            panic!("platt expected");
        };
        assert!(
            (a - 2.0).abs() < 0.01 && (b + 1.0).abs() < 0.01,
            "a {a} b {b}"
        );
    }
}
