//! One decision tree in LightGBM's layout, so that imported models route rows
//! exactly as LightGBM does and our own trees can be exported the same way.
//!
//! Internal nodes are `0..num_leaves-1`; a child index `c < 0` is the leaf `!c`.

use serde::{Deserialize, Serialize};

/// How a numeric split treats missing values (LightGBM's `missing_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MissingType {
    /// No missing handling: NaN is read as 0.0 and compared like any value.
    None,
    /// 0.0 (and NaN, read as 0.0) is missing and goes the default way.
    Zero,
    /// NaN is missing and goes the default way.
    NaN,
}

/// The test at an internal node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Split {
    /// `x <= threshold` goes left; missing values go `default_left`. Values
    /// with `|x| <= ZERO_THRESHOLD` are read as 0.0, as LightGBM does.
    Numeric {
        /// Compared as f64, as LightGBM does.
        threshold: f64,
        /// Where missing values go.
        default_left: bool,
        /// What counts as missing.
        missing: MissingType,
    },
    /// Integer category `c` goes left when bit `c` of `bitset` is set;
    /// NaN, negative and out-of-range categories go right.
    Categorical {
        /// 32-bit words, LightGBM's `cat_threshold` slice for this node.
        bitset: Vec<u32>,
    },
}

/// Values with `|x| <= ZERO_THRESHOLD` count as zero (LightGBM's `kZeroThreshold`, 1e-35f).
pub const ZERO_THRESHOLD: f64 = 1.000_000_018_002_509_5e-35;

/// The category a raw value codes, as every categorical test reads it:
/// truncation toward zero, as C++'s `static_cast<int>` in LightGBM (a value
/// past `i32` saturates and lands outside every bitset); `None` for NaN and
/// negative values, which go right at every categorical split.
#[inline(always)]
pub(crate) fn category_code(x: f64) -> Option<i32> {
    if x.is_nan() || x < 0.0 {
        None
    } else {
        Some(x as i32)
    }
}

impl Split {
    /// Whether `x` goes to the left child.
    #[inline]
    pub fn goes_left(&self, x: f64) -> bool {
        match self {
            Split::Numeric {
                threshold,
                default_left,
                missing,
            } => {
                // LightGBM's prediction input drops every |x| <= 1e-35 (it
                // reads them as 0.0), and reads NaN as 0.0 unless NaN is missing.
                let x = if x.is_nan() {
                    if *missing == MissingType::NaN { x } else { 0.0 }
                } else if x.abs() <= ZERO_THRESHOLD {
                    0.0
                } else {
                    x
                };
                let is_missing = match missing {
                    MissingType::None => false,
                    MissingType::Zero => x.abs() <= ZERO_THRESHOLD,
                    MissingType::NaN => x.is_nan(),
                };
                if is_missing {
                    *default_left
                } else {
                    x <= *threshold
                }
            }
            Split::Categorical { bitset } => {
                let Some(category) = category_code(x) else {
                    return false;
                };
                let word = (category / 32) as usize;
                bitset
                    .get(word)
                    .is_some_and(|bits| (bits >> (category % 32)) & 1 == 1)
            }
        }
    }
}

/// A fitted tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Feature index of each internal node.
    pub split_feature: Vec<u32>,
    /// Test of each internal node.
    pub split: Vec<Split>,
    /// Gain of each internal node's split (for importance).
    pub split_gain: Vec<f64>,
    /// Left child of each internal node (`< 0` means leaf `!c`).
    pub left_child: Vec<i32>,
    /// Right child of each internal node.
    pub right_child: Vec<i32>,
    /// Training rows that reached each internal node (the TreeSHAP cover).
    pub internal_count: Vec<f64>,
    /// Output of each leaf (already scaled by the learning rate).
    pub leaf_value: Vec<f64>,
    /// Training rows that reached each leaf.
    pub leaf_count: Vec<f64>,
}

impl Tree {
    /// A tree with a single leaf.
    pub fn constant(value: f64, count: f64) -> Tree {
        Tree {
            split_feature: Vec::new(),
            split: Vec::new(),
            split_gain: Vec::new(),
            left_child: Vec::new(),
            right_child: Vec::new(),
            internal_count: Vec::new(),
            leaf_value: vec![value],
            leaf_count: vec![count],
        }
    }

    /// Number of leaves.
    pub fn num_leaves(&self) -> usize {
        self.leaf_value.len()
    }

    /// The leaf a row reaches.
    #[inline]
    pub fn leaf(&self, row: &[f64]) -> usize {
        if self.split.is_empty() {
            return 0;
        }
        let mut node = 0i32;
        while node >= 0 {
            let n = node as usize;
            let x = row
                .get(self.split_feature[n] as usize)
                .copied()
                .unwrap_or(f64::NAN);
            node = if self.split[n].goes_left(x) {
                self.left_child[n]
            } else {
                self.right_child[n]
            };
        }
        !node as usize
    }

    /// The tree's output for a row.
    #[inline]
    pub fn predict(&self, row: &[f64]) -> f64 {
        self.leaf_value[self.leaf(row)]
    }

    /// Rows at the root: the denominator of every cover fraction.
    pub fn root_count(&self) -> f64 {
        self.internal_count
            .first()
            .copied()
            .unwrap_or_else(|| self.leaf_count.first().copied().unwrap_or(0.0))
    }

    /// Training rows that reached a child (`< 0` for a leaf).
    pub fn child_count(&self, child: i32) -> f64 {
        if child < 0 {
            self.leaf_count[!child as usize]
        } else {
            self.internal_count[child as usize]
        }
    }

    /// Mean output over the training rows (LightGBM's `ExpectedValue`): the
    /// TreeSHAP base value of this tree.
    pub fn expected_value(&self) -> f64 {
        let root = self.root_count();
        if self.num_leaves() == 1 || root <= 0.0 {
            return self.leaf_value[0];
        }
        self.leaf_value
            .iter()
            .zip(&self.leaf_count)
            .map(|(v, c)| v * c / root)
            .sum()
    }

    /// Checks the structure: every index in range, every leaf reached once.
    pub(crate) fn validate(&self, num_features: usize) -> Result<(), String> {
        let internal = self.split.len();
        if self.num_leaves() != internal + 1 {
            return Err(format!(
                "{} leaves for {internal} internal nodes",
                self.num_leaves()
            ));
        }
        let lengths = [
            self.split_feature.len(),
            self.split_gain.len(),
            self.left_child.len(),
            self.right_child.len(),
            self.internal_count.len(),
        ];
        if lengths.iter().any(|&n| n != internal) || self.leaf_count.len() != self.num_leaves() {
            return Err("node arrays of different lengths".into());
        }
        if let Some(f) = self
            .split_feature
            .iter()
            .find(|&&f| f as usize >= num_features)
        {
            return Err(format!("split on feature {f} of {num_features}"));
        }
        let mut seen_nodes = vec![false; internal];
        let mut seen_leaves = vec![false; self.num_leaves()];
        let mut stack = if internal == 0 { vec![] } else { vec![0i32] };
        if let Some(root) = seen_nodes.first_mut() {
            *root = true;
        }
        while let Some(node) = stack.pop() {
            for child in [
                self.left_child[node as usize],
                self.right_child[node as usize],
            ] {
                let slot = if child < 0 {
                    seen_leaves.get_mut(!child as usize)
                } else {
                    seen_nodes.get_mut(child as usize)
                };
                match slot {
                    Some(seen) if !*seen => *seen = true,
                    Some(_) => return Err(format!("node {child} reached twice")),
                    None => return Err(format!("child {child} out of range")),
                }
                if child >= 0 {
                    stack.push(child);
                }
            }
        }
        if internal > 0 && seen_leaves.iter().any(|s| !s) {
            return Err("a leaf is unreachable".into());
        }
        if self.leaf_value.iter().any(|v| !v.is_finite()) {
            return Err("a leaf value is not finite".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_routing_follows_lightgbm() {
        let split = |missing, default_left| Split::Numeric {
            threshold: 0.5,
            default_left,
            missing,
        };
        // None: NaN reads as 0.0.
        assert!(split(MissingType::None, false).goes_left(f64::NAN));
        assert!(split(MissingType::None, false).goes_left(0.5));
        assert!(!split(MissingType::None, true).goes_left(0.500_000_000_000_000_1));
        // Zero: 0, tiny values and NaN take the default way.
        assert!(!split(MissingType::Zero, false).goes_left(0.0));
        assert!(!split(MissingType::Zero, false).goes_left(-1e-36));
        assert!(!split(MissingType::Zero, false).goes_left(f64::NAN));
        assert!(split(MissingType::Zero, false).goes_left(1e-30));
        // Values within ±1e-35 are zero, even against a threshold of -1e-35.
        let at_minus_zero = Split::Numeric {
            threshold: -ZERO_THRESHOLD,
            default_left: true,
            missing: MissingType::None,
        };
        assert!(!at_minus_zero.goes_left(-ZERO_THRESHOLD));
        assert!(at_minus_zero.goes_left(-2e-35));
        // NaN: only NaN takes the default way.
        assert!(split(MissingType::NaN, true).goes_left(f64::NAN));
        assert!(!split(MissingType::NaN, false).goes_left(f64::NAN));
        assert!(split(MissingType::NaN, false).goes_left(0.0));
    }

    #[test]
    fn categorical_routing_follows_lightgbm() {
        let split = Split::Categorical {
            bitset: vec![0b1010, 1 << 3],
        };
        assert!(split.goes_left(1.0) && split.goes_left(3.0) && split.goes_left(35.0));
        assert!(split.goes_left(3.9), "truncated toward zero");
        assert!(!split.goes_left(2.0) && !split.goes_left(0.0));
        assert!(!split.goes_left(-1.0) && !split.goes_left(f64::NAN));
        assert!(
            !split.goes_left(64.0) && !split.goes_left(1e20),
            "outside the bitset"
        );
    }
}
