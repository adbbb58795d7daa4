//! Feature values → bins. Numeric features get quantile bins whose upper
//! bounds are the split thresholds (so `bin ≤ t` ⇔ `x ≤ upper[t]`, exactly the
//! raw-value test prediction uses); categorical features get one bin per
//! frequent category. The last bin of every feature holds missing values.

use serde::{Deserialize, Serialize};

use crate::tree::{ZERO_THRESHOLD, category_code};

/// How one feature's values map to bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BinMapper {
    /// Bin `b` holds `upper[b − 1] < x ≤ upper[b]`; the last upper bound is +∞.
    Numeric {
        /// Upper bound of each value bin.
        upper: Vec<f64>,
        /// Whether training data had NaN.
        has_missing: bool,
    },
    /// Bin `b` holds category `categories[b]`; other categories, negative and
    /// NaN values go to the missing bin.
    Categorical {
        /// Category of each value bin, most frequent first.
        categories: Vec<i32>,
    },
}

impl BinMapper {
    /// Number of value bins (the missing bin is index `value_bins()`).
    pub fn value_bins(&self) -> usize {
        match self {
            BinMapper::Numeric { upper, .. } => upper.len(),
            BinMapper::Categorical { categories } => categories.len(),
        }
    }

    /// The bin of a value.
    pub fn bin(&self, x: f64) -> u8 {
        match self {
            BinMapper::Numeric { upper, .. } => {
                if x.is_nan() {
                    return upper.len() as u8;
                }
                let x = if x.abs() <= ZERO_THRESHOLD { 0.0 } else { x };
                upper.partition_point(|u| *u < x).min(upper.len() - 1) as u8
            }
            BinMapper::Categorical { categories } => {
                let Some(c) = category_code(x) else {
                    return categories.len() as u8;
                };
                categories
                    .iter()
                    .position(|&k| k == c)
                    .unwrap_or(categories.len()) as u8
            }
        }
    }

    /// Quantile bins for a numeric column.
    pub fn numeric(values: &[f64], max_bin: usize, min_data_in_bin: usize) -> BinMapper {
        let mut sorted: Vec<f64> = values
            .iter()
            .filter(|v| !v.is_nan())
            .map(|&v| if v.abs() <= ZERO_THRESHOLD { 0.0 } else { v })
            .collect();
        let has_missing = sorted.len() < values.len();
        sorted.sort_by(f64::total_cmp);
        // Distinct values with their counts.
        let mut distinct: Vec<(f64, usize)> = Vec::new();
        for v in sorted {
            match distinct.last_mut() {
                Some((last, count)) if *last == v => *count += 1,
                _ => distinct.push((v, 1)),
            }
        }
        let mut upper = Vec::new();
        if distinct.len() <= max_bin {
            for pair in distinct.windows(2) {
                upper.push(midpoint(pair[0].0, pair[1].0));
            }
        } else {
            // Greedy equal-count bins over distinct values.
            let total: usize = distinct.iter().map(|d| d.1).sum();
            let per_bin = (total as f64 / max_bin as f64).max(min_data_in_bin as f64);
            let mut in_bin = 0usize;
            for (i, &(value, count)) in distinct.iter().enumerate() {
                in_bin += count;
                let remaining_bins = max_bin - 1 - upper.len();
                if i + 1 < distinct.len() && remaining_bins > 0 && in_bin as f64 >= per_bin {
                    upper.push(midpoint(value, distinct[i + 1].0));
                    in_bin = 0;
                }
            }
        }
        upper.push(f64::INFINITY);
        BinMapper::Numeric { upper, has_missing }
    }

    /// One bin per category seen, most frequent first (ties: smaller code),
    /// at most `max_bin` of them.
    pub fn categorical(values: &[f64], max_bin: usize) -> BinMapper {
        let mut counts = std::collections::BTreeMap::new();
        for &v in values {
            if !(v.is_nan() || v < 0.0) {
                *counts.entry(v as i32).or_insert(0usize) += 1;
            }
        }
        let mut by_count: Vec<(i32, usize)> = counts.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        by_count.truncate(max_bin);
        BinMapper::Categorical {
            categories: by_count.into_iter().map(|(c, _)| c).collect(),
        }
    }
}

/// A threshold strictly between two values, as close to the middle as f64 allows.
fn midpoint(a: f64, b: f64) -> f64 {
    let mid = a + (b - a) / 2.0;
    if mid >= b { a } else { mid }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_values_get_a_bin_each_and_thresholds_route_like_bins() {
        let values = [3.0, 1.0, 2.0, 2.0, f64::NAN, 1.0];
        let mapper = BinMapper::numeric(&values, 255, 1);
        let BinMapper::Numeric { upper, has_missing } = &mapper else {
            panic!("numeric")
        };
        assert_eq!(upper, &vec![1.5, 2.5, f64::INFINITY]);
        assert!(has_missing);
        assert_eq!(mapper.bin(1.0), 0);
        assert_eq!(
            mapper.bin(1.5),
            0,
            "x == threshold goes to the lower bin, as x <= t goes left"
        );
        assert_eq!(mapper.bin(2.0), 1);
        assert_eq!(mapper.bin(100.0), 2);
        assert_eq!(mapper.bin(f64::NAN), 3);
    }

    #[test]
    fn many_values_get_about_equal_count_bins() {
        let values: Vec<f64> = (0..10_000).map(|i| (i as f64).sqrt()).collect();
        let mapper = BinMapper::numeric(&values, 16, 1);
        assert_eq!(mapper.value_bins(), 16);
        let mut counts = [0usize; 17];
        for v in &values {
            counts[mapper.bin(*v) as usize] += 1;
        }
        assert!(
            counts[..16].iter().all(|&c| (500..=800).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn categories_by_frequency_and_unknowns_to_missing() {
        let values = [2.0, 2.0, 5.0, 7.0, 7.0, 7.0, -1.0, f64::NAN];
        let mapper = BinMapper::categorical(&values, 255);
        assert_eq!(
            mapper,
            BinMapper::Categorical {
                categories: vec![7, 2, 5]
            }
        );
        assert_eq!(mapper.bin(7.9), 0);
        assert_eq!(mapper.bin(9.0), 3);
        assert_eq!(mapper.bin(-1.0), 3);
    }
}
