//! Objectives map scores to gradients; they never see trees.

/// A twice-differentiable loss on raw scores.
pub trait Objective: Sync {
    /// Name, for reports.
    fn name(&self) -> &'static str;
    /// The constant score that minimises the loss (the boosting start).
    fn init_score(&self, labels: &[f64], weights: &[f64]) -> f64;
    /// Writes gradient and hessian of every row at `scores`.
    fn gradients(
        &self,
        scores: &[f64],
        labels: &[f64],
        weights: &[f64],
        g: &mut [f64],
        h: &mut [f64],
    );
}

/// Binary log loss on log-odds scores, positives weighted by `scale_pos_weight`.
#[derive(Debug, Clone, Copy)]
pub struct BinaryLogLoss {
    /// Multiplier on the gradient and hessian of positive rows.
    pub scale_pos_weight: f64,
}

impl Objective for BinaryLogLoss {
    fn name(&self) -> &'static str {
        "binary_logloss"
    }

    fn init_score(&self, labels: &[f64], weights: &[f64]) -> f64 {
        let (mut positive, mut total) = (0.0, 0.0);
        for (y, w) in labels.iter().zip(weights) {
            let w = w * if *y > 0.5 { self.scale_pos_weight } else { 1.0 };
            positive += w * y;
            total += w;
        }
        let p = (positive / total).clamp(1e-15, 1.0 - 1e-15);
        (p / (1.0 - p)).ln()
    }

    fn gradients(
        &self,
        scores: &[f64],
        labels: &[f64],
        weights: &[f64],
        g: &mut [f64],
        h: &mut [f64],
    ) {
        for i in 0..scores.len() {
            let p = 1.0 / (1.0 + (-scores[i]).exp());
            let w = weights[i]
                * if labels[i] > 0.5 {
                    self.scale_pos_weight
                } else {
                    1.0
                };
            g[i] = (p - labels[i]) * w;
            h[i] = (p * (1.0 - p)).max(1e-16) * w;
        }
    }
}
