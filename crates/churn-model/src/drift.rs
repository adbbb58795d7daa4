//! Distribution drift: the population stability index over reference
//! quantile bins, and the two-sample Kolmogorov–Smirnov statistic.

use serde::Serialize;

use crate::ModelError;

/// Bin proportions below which PSI treats a bin as this small (an empty bin
/// would make the index infinite).
pub const PSI_FLOOR: f64 = 1e-4;

/// A reference distribution as PSI reads it: interior bin edges (bin `k`
/// holds `edges[k-1] < x ≤ edges[k]`) and the share of the reference in each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reference {
    pub edges: Vec<f64>,
    pub shares: Vec<f64>,
}

fn finite(values: &[f64], what: &str) -> Result<Vec<f64>, ModelError> {
    let kept: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if kept.is_empty() {
        return Err(ModelError::Invalid(format!("{what}: no finite value")));
    }
    Ok(kept)
}

fn bin_of(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|&e| e < x)
}

impl Reference {
    /// Up to `bins` equal-mass bins of `values` (quantile edges, duplicates merged).
    pub fn from_values(values: &[f64], bins: usize) -> Result<Reference, ModelError> {
        let mut sorted = finite(values, "reference")?;
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mut edges: Vec<f64> = (1..bins.max(1))
            .map(|k| sorted[(k * n / bins).saturating_sub(1).min(n - 1)])
            .collect();
        edges.dedup();
        if edges.last() == sorted.last() {
            edges.pop();
        }
        let shares = Self::shares_of(&edges, &sorted);
        Ok(Reference { edges, shares })
    }

    fn shares_of(edges: &[f64], values: &[f64]) -> Vec<f64> {
        let mut counts = vec![0usize; edges.len() + 1];
        for &x in values {
            counts[bin_of(edges, x)] += 1;
        }
        counts
            .iter()
            .map(|&c| c as f64 / values.len() as f64)
            .collect()
    }

    /// Population stability index of `values` against this reference:
    /// Σ (current − reference) · ln(current / reference), shares floored at
    /// [`PSI_FLOOR`]. Non-finite values are left out.
    pub fn psi(&self, values: &[f64]) -> Result<f64, ModelError> {
        let current = Self::shares_of(&self.edges, &finite(values, "current")?);
        Ok(current
            .iter()
            .zip(&self.shares)
            .map(|(&c, &r)| {
                let (c, r) = (c.max(PSI_FLOOR), r.max(PSI_FLOOR));
                (c - r) * (c / r).ln()
            })
            .sum())
    }
}

/// The two-sample Kolmogorov–Smirnov test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ks {
    /// The largest distance between the two empirical distribution functions.
    pub statistic: f64,
    /// The limiting Kolmogorov distribution's p-value at √(n·m/(n+m))·D
    /// (scipy's `kstwobign.sf`); close to `ks_2samp`'s for large samples.
    pub p_value: f64,
}

/// Two-sample KS of `a` against `b` (non-finite values left out).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Result<Ks, ModelError> {
    let (mut a, mut b) = (finite(a, "first sample")?, finite(b, "second sample")?);
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut statistic) = (0usize, 0usize, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        statistic = statistic.max((i as f64 / n - j as f64 / m).abs());
    }
    let en = (n * m / (n + m)).sqrt();
    Ok(Ks {
        statistic,
        p_value: kolmogorov_sf(en * statistic).clamp(0.0, 1.0),
    })
}

/// The Kolmogorov distribution's survival function, Σ (−1)^(k−1) 2 e^(−2k²x²).
fn kolmogorov_sf(x: f64) -> f64 {
    // Below 0.2 the distribution function is under 1e-9.
    if x < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=200 {
        let k = f64::from(k);
        let term = 2.0 * (-2.0 * k * k * x * x).exp();
        sum += if (k as u32) % 2 == 1 { term } else { -term };
        if term < 1e-17 {
            break;
        }
    }
    sum
}

/// Points kept to describe a numeric distribution (evenly spaced quantiles).
pub const QUANTILES: usize = 201;

/// The evenly spaced quantiles (nearest rank) of the finite values, and the
/// share of values that are missing (non-finite).
pub fn quantiles(values: &[f64]) -> (Vec<f64>, f64) {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    finite.sort_by(f64::total_cmp);
    let missing = if values.is_empty() {
        0.0
    } else {
        1.0 - finite.len() as f64 / values.len() as f64
    };
    if finite.is_empty() {
        return (Vec::new(), missing);
    }
    let n = finite.len();
    let q = (0..QUANTILES)
        .map(|k| finite[k * (n - 1) / (QUANTILES - 1)])
        .collect();
    (q, missing)
}

/// A numeric feature's training distribution.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NumericReference {
    pub feature: String,
    /// [`QUANTILES`] evenly spaced quantiles of the finite training values.
    pub quantiles: Vec<f64>,
    pub missing_share: f64,
}

/// A categorical feature's training distribution.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CategoricalReference {
    pub feature: String,
    /// Share of each category (missing counted under `""`).
    pub shares: Vec<(String, f64)>,
}

/// What a model saw in training, for drift checks: `reference.json` next to
/// `model.json` (the server's live PSI and `churn monitor` read it).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TrainingReference {
    /// Rows it was drawn from.
    pub rows: usize,
    /// Quantiles of the model's predicted probabilities on its test rows.
    pub predictions: Vec<f64>,
    pub numeric: Vec<NumericReference>,
    pub categorical: Vec<CategoricalReference>,
}

impl NumericReference {
    /// PSI over the reference's decile bins plus a missing bin.
    pub fn psi(&self, values: &[f64]) -> Result<f64, ModelError> {
        let current_missing = if values.is_empty() {
            0.0
        } else {
            values.iter().filter(|v| !v.is_finite()).count() as f64 / values.len() as f64
        };
        let floor = |x: f64| x.max(PSI_FLOOR);
        let term = |c: f64, r: f64| (floor(c) - floor(r)) * (floor(c) / floor(r)).ln();
        let missing_term = term(current_missing, self.missing_share);
        if self.quantiles.is_empty() || current_missing >= 1.0 {
            return Ok(missing_term);
        }
        let bins = Reference::from_values(&self.quantiles, 10)?;
        let current = Reference::shares_of(
            &bins.edges,
            &values
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .collect::<Vec<_>>(),
        );
        Ok(missing_term
            + current
                .iter()
                .zip(&bins.shares)
                .map(|(&c, &r)| term(c * (1.0 - current_missing), r * (1.0 - self.missing_share)))
                .sum::<f64>())
    }

    /// KS of the finite values against the reference quantiles.
    pub fn ks(&self, values: &[f64]) -> Option<Ks> {
        ks_2samp(values, &self.quantiles).ok()
    }
}

impl CategoricalReference {
    /// PSI over the reference's categories plus one bin for categories it never saw.
    pub fn psi(&self, values: &[Option<&str>]) -> f64 {
        if values.is_empty() {
            return 0.0;
        }
        let n = values.len() as f64;
        let mut current = vec![0.0; self.shares.len() + 1];
        for v in values {
            let key = v.unwrap_or("");
            match self.shares.iter().position(|(c, _)| c == key) {
                Some(k) => current[k] += 1.0 / n,
                None => current[self.shares.len()] += 1.0 / n,
            }
        }
        let floor = |x: f64| x.max(PSI_FLOOR);
        current
            .iter()
            .zip(self.shares.iter().map(|s| s.1).chain([0.0]))
            .map(|(&c, r)| (floor(c) - floor(r)) * (floor(c) / floor(r)).ln())
            .sum()
    }
}

/// A categorical reference from training values.
pub fn category_shares(values: &[Option<&str>]) -> Vec<(String, f64)> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for v in values {
        *counts.entry(v.unwrap_or("")).or_default() += 1;
    }
    let n = values.len().max(1) as f64;
    counts
        .into_iter()
        .map(|(c, k)| (c.to_owned(), k as f64 / n))
        .collect()
}
