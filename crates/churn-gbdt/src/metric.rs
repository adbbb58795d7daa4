//! Metrics for early stopping (the product's full metric set lives in churn-train).

/// ROC-AUC with ties counted half (Mann–Whitney), weighted.
pub fn auc(scores: &[f64], labels: &[f64], weights: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut positive, mut negative, mut area) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        let (mut tie_pos, mut tie_neg) = (0.0, 0.0);
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            let k = order[j];
            if labels[k] > 0.5 {
                tie_pos += weights[k];
            } else {
                tie_neg += weights[k];
            }
            j += 1;
        }
        area += tie_pos * (negative + tie_neg / 2.0);
        positive += tie_pos;
        negative += tie_neg;
        i = j;
    }
    if positive == 0.0 || negative == 0.0 {
        f64::NAN
    } else {
        area / (positive * negative)
    }
}

/// Mean binary log loss of log-odds scores, weighted.
pub fn log_loss(scores: &[f64], labels: &[f64], weights: &[f64]) -> f64 {
    let (loss, total) = log_loss_sums(scores, labels, weights);
    loss / total
}

/// The weighted log loss summed over rows, and the weights summed: parts
/// of a table add up to the table's (in a fixed order, the same sum).
pub(crate) fn log_loss_sums(scores: &[f64], labels: &[f64], weights: &[f64]) -> (f64, f64) {
    let (mut loss, mut total) = (0.0, 0.0);
    for ((s, y), w) in scores.iter().zip(labels).zip(weights) {
        // log(1 + e^s) − y·s, computed without overflow.
        let softplus = if *s > 0.0 {
            s + (-s).exp().ln_1p()
        } else {
            s.exp().ln_1p()
        };
        loss += w * (softplus - y * s);
        total += w;
    }
    (loss, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half() {
        let w = [1.0; 4];
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0], &w), 0.75);
        assert_eq!(auc(&[0.5, 0.5, 0.5, 0.5], &[0.0, 1.0, 0.0, 1.0], &w), 0.5);
        assert!(auc(&[0.1, 0.2], &[1.0, 1.0], &w[..2]).is_nan());
    }

    #[test]
    fn log_loss_is_the_formula() {
        let p: f64 = 0.8;
        let s = (p / (1.0 - p)).ln();
        let expected = -(0.8f64.ln() + 0.2f64.ln()) / 2.0;
        assert!((log_loss(&[s, s], &[1.0, 0.0], &[1.0, 1.0]) - expected).abs() < 1e-15);
        assert!(
            log_loss(&[800.0], &[1.0], &[1.0]).abs() < 1e-300,
            "no overflow"
        );
    }
}
