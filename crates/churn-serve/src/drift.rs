//! Live input drift: the last served rows of a model against the training
//! distributions in its `reference.json`, as PSI per feature and for the
//! predicted probability, exposed in /metrics so an alert can fire without
//! running `churn monitor`. The statistics are churn-model's, the same that
//! `churn monitor` computes from the feature log.

use std::collections::VecDeque;
use std::sync::Mutex;

use churn_model::drift::{NumericReference, TrainingReference};
use churn_model::{Input, InputSchema};

/// One served row, as the window keeps it.
struct Row {
    numeric: Vec<f64>,
    categorical: Vec<Option<String>>,
    probability: f64,
}

/// Drift over the window.
pub struct WindowDrift {
    /// PSI per feature, in reference order.
    pub features: Vec<(String, f64)>,
    /// PSI of the predicted probability.
    pub prediction: f64,
    pub rows: usize,
}

/// The most recent served rows of one model and its training reference.
pub struct LiveDrift {
    reference: TrainingReference,
    /// Schema position of each reference feature (numeric, then categorical).
    numeric_at: Vec<usize>,
    categorical_at: Vec<usize>,
    capacity: usize,
    window: Mutex<VecDeque<Row>>,
}

impl LiveDrift {
    /// `None` when a reference feature is not in the schema (the reference
    /// belongs to another model).
    pub fn new(
        reference: TrainingReference,
        schema: &InputSchema,
        capacity: usize,
    ) -> Option<LiveDrift> {
        let position = |name: &str| schema.features.iter().position(|f| f.name == name);
        let numeric_at = reference
            .numeric
            .iter()
            .map(|r| position(&r.feature))
            .collect::<Option<Vec<_>>>()?;
        let categorical_at = reference
            .categorical
            .iter()
            .map(|r| position(&r.feature).map(|p| p - schema.numeric_len()))
            .collect::<Option<Vec<_>>>()?;
        if numeric_at.iter().any(|&p| p >= schema.numeric_len()) {
            return None;
        }
        Some(LiveDrift {
            reference,
            numeric_at,
            categorical_at,
            capacity: capacity.max(1),
            window: Mutex::new(VecDeque::new()),
        })
    }

    /// Adds one served row. Never waits: a row that finds the window busy
    /// is skipped (the window is a sample either way).
    pub fn observe(&self, input: &Input<'_>, probability: f64) {
        let Ok(mut window) = self.window.try_lock() else {
            return;
        };
        if window.len() == self.capacity {
            window.pop_front();
        }
        window.push_back(Row {
            numeric: self
                .numeric_at
                .iter()
                .map(|&p| input.numeric.get(p).copied().unwrap_or(f64::NAN))
                .collect(),
            categorical: self
                .categorical_at
                .iter()
                .map(|&p| {
                    input
                        .categorical
                        .get(p)
                        .copied()
                        .flatten()
                        .map(str::to_owned)
                })
                .collect(),
            probability,
        });
    }

    /// PSI of each feature over the window (in reference order), of the
    /// predicted probability, and the number of rows; `None` before any row.
    pub fn psi(&self) -> Option<WindowDrift> {
        let rows: Vec<Row> = {
            let window = self.window.lock().ok()?;
            if window.is_empty() {
                return None;
            }
            window
                .iter()
                .map(|r| Row {
                    numeric: r.numeric.clone(),
                    categorical: r.categorical.clone(),
                    probability: r.probability,
                })
                .collect()
        };
        let mut out = Vec::new();
        for (k, r) in self.reference.numeric.iter().enumerate() {
            let values: Vec<f64> = rows.iter().map(|row| row.numeric[k]).collect();
            out.push((r.feature.clone(), r.psi(&values).unwrap_or(f64::NAN)));
        }
        for (k, r) in self.reference.categorical.iter().enumerate() {
            let values: Vec<Option<&str>> = rows
                .iter()
                .map(|row| row.categorical[k].as_deref())
                .collect();
            out.push((r.feature.clone(), r.psi(&values)));
        }
        let predictions: Vec<f64> = rows.iter().map(|r| r.probability).collect();
        let prediction_psi = NumericReference {
            feature: String::new(),
            quantiles: self.reference.predictions.clone(),
            missing_share: 0.0,
        }
        .psi(&predictions)
        .unwrap_or(f64::NAN);
        Some(WindowDrift {
            features: out,
            prediction: prediction_psi,
            rows: rows.len(),
        })
    }
}
