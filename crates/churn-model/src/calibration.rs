//! Calibration: from a model's margin to a probability that means what it says.
//!
//! Fitted by churn-train on the validation predictions. Contributions stay on
//! the margin (log-odds) scale; only the probability is calibrated.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// A map from margin to calibrated probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Calibration {
    /// `σ(margin)`.
    None,
    /// Platt scaling: `σ(a · margin + b)`.
    Platt { a: f64, b: f64 },
    /// Isotonic regression on the raw probability `σ(margin)`: linear
    /// interpolation between the fitted points, clipped at both ends
    /// (scikit-learn's `IsotonicRegression(out_of_bounds="clip")`).
    Isotonic { x: Vec<f64>, y: Vec<f64> },
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Calibration {
    /// The name shown on the model card.
    pub fn name(&self) -> &'static str {
        match self {
            Calibration::None => "none",
            Calibration::Platt { .. } => "platt",
            Calibration::Isotonic { .. } => "isotonic",
        }
    }

    /// Checks the parameters (finite; isotonic points sorted, values in [0, 1]).
    pub fn validate(&self) -> Result<(), ModelError> {
        let ok = match self {
            Calibration::None => true,
            Calibration::Platt { a, b } => a.is_finite() && b.is_finite(),
            Calibration::Isotonic { x, y } => {
                !x.is_empty()
                    && x.len() == y.len()
                    && x.is_sorted()
                    && x.iter().all(|v| v.is_finite())
                    && y.iter().all(|v| (0.0..=1.0).contains(v))
                    && y.is_sorted()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(ModelError::Invalid(format!(
                "calibration {} has invalid parameters",
                self.name()
            )))
        }
    }

    /// The calibrated probability of a margin.
    pub fn probability(&self, margin: f64) -> f64 {
        match self {
            Calibration::None => sigmoid(margin),
            Calibration::Platt { a, b } => sigmoid(a * margin + b),
            Calibration::Isotonic { x, y } => interpolate(x, y, sigmoid(margin)),
        }
    }
}

/// Piecewise-linear interpolation through `(x, y)`, constant beyond the ends.
pub fn interpolate(x: &[f64], y: &[f64], at: f64) -> f64 {
    let (Some(&first), Some(&last)) = (x.first(), x.last()) else {
        return f64::NAN;
    };
    if at <= first {
        return y[0];
    }
    if at >= last {
        return y[y.len() - 1];
    }
    let i = x.partition_point(|v| *v <= at); // x[i-1] ≤ at < x[i]
    let (x0, x1, y0, y1) = (x[i - 1], x[i], y[i - 1], y[i]);
    if x1 == x0 {
        y1
    } else {
        y0 + (y1 - y0) * (at - x0) / (x1 - x0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_interpolates_and_clips() {
        let c = Calibration::Isotonic {
            x: vec![0.2, 0.4, 0.8],
            y: vec![0.1, 0.3, 0.5],
        };
        c.validate().unwrap();
        let p = |prob: f64| c.probability((prob / (1.0 - prob)).ln());
        assert!((p(0.3) - 0.2).abs() < 1e-12);
        assert!((p(0.6) - 0.4).abs() < 1e-12);
        assert_eq!(p(0.05), 0.1);
        assert_eq!(p(0.95), 0.5);
        let platt = Calibration::Platt { a: 2.0, b: -1.0 };
        assert!((platt.probability(0.5) - 0.5).abs() < 1e-15);
        assert!(
            Calibration::Isotonic {
                x: vec![0.3, 0.2],
                y: vec![0.1, 0.2]
            }
            .validate()
            .is_err()
        );
    }
}
