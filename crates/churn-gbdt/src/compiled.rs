//! A flat, cache-friendly copy of a model for the hot paths (prediction and
//! the per-node decisions of TreeSHAP). Built once from a [`Model`]; routes
//! exactly as [`crate::Split::goes_left`] does (tested against it).

use rayon::prelude::*;

use crate::GbdtError;
use crate::model::{Model, row_count};
use crate::tree::{MissingType, Split, ZERO_THRESHOLD};

const NUMERIC_NONE: u8 = 0;
const NUMERIC_ZERO: u8 = 1;
const NUMERIC_NAN: u8 = 2;
const CATEGORICAL: u8 = 3;

/// One internal node, 32 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    threshold: f64,
    feature: u32,
    /// `[left, right]`; `< 0` is leaf `!c`.
    children: [i32; 2],
    /// Categorical: range into the forest's bitset pool.
    bitset_start: u32,
    bitset_len: u16,
    kind: u8,
    default_left: bool,
}

impl Node {
    #[inline(always)]
    pub(crate) fn goes_left(&self, x: f64, bitsets: &[u32]) -> bool {
        let zeroish = x.abs() <= ZERO_THRESHOLD;
        match self.kind {
            NUMERIC_NONE => {
                let x = if x.is_nan() || zeroish { 0.0 } else { x };
                x <= self.threshold
            }
            NUMERIC_ZERO => {
                if x.is_nan() || zeroish {
                    self.default_left
                } else {
                    x <= self.threshold
                }
            }
            NUMERIC_NAN => {
                if x.is_nan() {
                    self.default_left
                } else {
                    (if zeroish { 0.0 } else { x }) <= self.threshold
                }
            }
            _ => {
                if x.is_nan() || x < 0.0 {
                    return false;
                }
                let category = x as i32;
                let word = (category / 32) as usize;
                word < self.bitset_len as usize
                    && bitsets
                        .get(self.bitset_start as usize + word)
                        .is_some_and(|bits| (bits >> (category % 32)) & 1 == 1)
            }
        }
    }

    #[inline(always)]
    pub(crate) fn feature(&self) -> usize {
        self.feature as usize
    }
}

/// A tree's nodes and leaf values.
#[derive(Debug, Clone)]
pub(crate) struct FlatTree {
    pub(crate) nodes: Vec<Node>,
    pub(crate) leaf_value: Vec<f64>,
}

/// The compiled model.
#[derive(Debug, Clone)]
pub struct Predictor {
    pub(crate) trees: Vec<FlatTree>,
    pub(crate) bitsets: Vec<u32>,
    num_features: usize,
    sigmoid: f64,
}

impl Predictor {
    /// Compiles a model (which [`Model::validate`] accepted).
    pub fn new(model: &Model) -> Predictor {
        let mut bitsets = Vec::new();
        let trees = model
            .trees
            .iter()
            .map(|tree| FlatTree {
                nodes: tree
                    .split
                    .iter()
                    .enumerate()
                    .map(|(n, split)| {
                        let (kind, threshold, default_left, start, len) = match split {
                            Split::Numeric {
                                threshold,
                                default_left,
                                missing,
                            } => {
                                let kind = match missing {
                                    MissingType::None => NUMERIC_NONE,
                                    MissingType::Zero => NUMERIC_ZERO,
                                    MissingType::NaN => NUMERIC_NAN,
                                };
                                (kind, *threshold, *default_left, 0, 0)
                            }
                            Split::Categorical { bitset } => {
                                let start = bitsets.len() as u32;
                                bitsets.extend_from_slice(bitset);
                                (
                                    CATEGORICAL,
                                    0.0,
                                    false,
                                    start,
                                    bitset.len().min(u16::MAX as usize) as u16,
                                )
                            }
                        };
                        Node {
                            threshold,
                            feature: tree.split_feature[n],
                            children: [tree.left_child[n], tree.right_child[n]],
                            bitset_start: start,
                            bitset_len: len,
                            kind,
                            default_left,
                        }
                    })
                    .collect(),
                leaf_value: tree.leaf_value.clone(),
            })
            .collect();
        Predictor {
            trees,
            bitsets,
            num_features: model.num_features(),
            sigmoid: model.sigmoid,
        }
    }

    /// Number of input features.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The log-odds margin of one row; absent trailing values read as missing.
    #[inline]
    pub fn predict_raw(&self, row: &[f64]) -> f64 {
        let mut sum = 0.0;
        for tree in &self.trees {
            let mut node = if tree.nodes.is_empty() { -1 } else { 0i32 };
            while node >= 0 {
                let n = &tree.nodes[node as usize];
                let x = row.get(n.feature()).copied().unwrap_or(f64::NAN);
                node = n.children[usize::from(!n.goes_left(x, &self.bitsets))];
            }
            sum += tree.leaf_value[!node as usize];
        }
        sum
    }

    /// The probability of one row.
    pub fn predict_proba(&self, row: &[f64]) -> f64 {
        1.0 / (1.0 + (-self.sigmoid * self.predict_raw(row)).exp())
    }

    /// Margins of many rows (row-major), in parallel over fixed 1024-row blocks.
    pub fn predict_raw_batch(&self, rows: &[f64]) -> Result<Vec<f64>, GbdtError> {
        let width = self.num_features.max(1);
        let mut out = vec![0.0; row_count(rows.len(), width)?];
        out.par_chunks_mut(1024)
            .zip(rows.par_chunks(1024 * width))
            .for_each(|(margins, block)| {
                for (margin, row) in margins.iter_mut().zip(block.chunks_exact(width)) {
                    *margin = self.predict_raw(row);
                }
            });
        Ok(out)
    }
}
