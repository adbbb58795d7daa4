//! Live input drift: the last served rows of a model against the training
//! distributions in its `reference.json`, as PSI per feature and for the
//! predicted probability, exposed in /metrics so an alert can fire without
//! running `churn monitor`. The statistics are churn-model's, the same that
//! `churn monitor` computes from the feature log.

use std::sync::Mutex;

use churn_model::drift::{NumericReference, TrainingReference};
use churn_model::{Input, InputSchema};

/// The latest rows, in flat ring buffers (no allocation per request):
/// numeric values, category indices into the reference's categories (`len`
/// for one it never saw), predicted probabilities.
struct Window {
    numeric: Vec<f64>,
    categorical: Vec<u16>,
    probability: Vec<f64>,
    /// Next slot to write.
    next: usize,
    rows: usize,
}

/// Drift over the window.
pub struct WindowDrift {
    /// PSI per feature, in reference order.
    pub features: Vec<(String, f64)>,
    /// PSI of the predicted probability.
    pub prediction: f64,
    pub rows: usize,
}

/// Every how many predictions one row enters the window: a sample keeps
/// the cost on the predict path small and still covers recent traffic.
const STRIDE: u64 = 4;

/// The most recent served rows of one model and its training reference.
pub struct LiveDrift {
    reference: TrainingReference,
    /// Schema position of each reference feature (numeric, then categorical).
    numeric_at: Vec<usize>,
    categorical_at: Vec<usize>,
    capacity: usize,
    seen: std::sync::atomic::AtomicU64,
    window: Mutex<Window>,
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
        if numeric_at.iter().any(|&p| p >= schema.numeric_len())
            || reference
                .categorical
                .iter()
                .any(|r| r.shares.len() >= usize::from(u16::MAX))
        {
            return None;
        }
        let capacity = capacity.max(1);
        Some(LiveDrift {
            window: Mutex::new(Window {
                numeric: vec![f64::NAN; capacity * numeric_at.len()],
                categorical: vec![0; capacity * categorical_at.len()],
                probability: vec![f64::NAN; capacity],
                next: 0,
                rows: 0,
            }),
            reference,
            numeric_at,
            categorical_at,
            capacity,
            seen: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Adds one served row (one in [`STRIDE`]). Never waits: a row that finds
    /// the window busy is skipped (the window is a sample either way).
    pub fn observe(&self, input: &Input<'_>, probability: f64) {
        let seen = self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !seen.is_multiple_of(STRIDE) {
            return;
        }
        let Ok(mut window) = self.window.try_lock() else {
            return;
        };
        let slot = window.next;
        let (n, c) = (self.numeric_at.len(), self.categorical_at.len());
        for (k, &p) in self.numeric_at.iter().enumerate() {
            window.numeric[slot * n + k] = input.numeric.get(p).copied().unwrap_or(f64::NAN);
        }
        for (k, &p) in self.categorical_at.iter().enumerate() {
            let shares = &self.reference.categorical[k].shares;
            let key = input.categorical.get(p).copied().flatten().unwrap_or("");
            let index = shares
                .iter()
                .position(|(c, _)| c == key)
                .unwrap_or(shares.len());
            window.categorical[slot * c + k] = index as u16;
        }
        window.probability[slot] = probability;
        window.next = (slot + 1) % self.capacity;
        window.rows = (window.rows + 1).min(self.capacity);
    }

    /// PSI of each feature over the window (in reference order), of the
    /// predicted probability, and the number of rows; `None` before any row.
    pub fn psi(&self) -> Option<WindowDrift> {
        let (numeric, categorical, probability, rows) = {
            let window = self.window.lock().ok()?;
            if window.rows == 0 {
                return None;
            }
            let rows = window.rows;
            let (n, c) = (self.numeric_at.len(), self.categorical_at.len());
            (
                window.numeric[..rows * n].to_vec(),
                window.categorical[..rows * c].to_vec(),
                window.probability[..rows].to_vec(),
                rows,
            )
        };
        let (n, c) = (self.numeric_at.len(), self.categorical_at.len());
        let mut features = Vec::new();
        for (k, r) in self.reference.numeric.iter().enumerate() {
            let values: Vec<f64> = (0..rows).map(|i| numeric[i * n + k]).collect();
            features.push((r.feature.clone(), r.psi(&values).unwrap_or(f64::NAN)));
        }
        for (k, r) in self.reference.categorical.iter().enumerate() {
            let values: Vec<Option<&str>> = (0..rows)
                .map(
                    |i| match r.shares.get(usize::from(categorical[i * c + k])) {
                        Some((category, _)) if category.is_empty() => None,
                        Some((category, _)) => Some(category.as_str()),
                        // Not a category of the reference: any key it does not hold.
                        None => Some("\u{1}unseen"),
                    },
                )
                .collect();
            features.push((r.feature.clone(), r.psi(&values)));
        }
        let prediction = NumericReference {
            feature: String::new(),
            quantiles: self.reference.predictions.clone(),
            missing_share: 0.0,
        }
        .psi(&probability)
        .unwrap_or(f64::NAN);
        Some(WindowDrift {
            features,
            prediction,
            rows,
        })
    }
}
