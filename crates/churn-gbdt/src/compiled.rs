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

/// Row flags after quantization.
const IS_NAN: u8 = 1;
const IS_ZERO: u8 = 2;

/// One internal node, 32 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    threshold: f64,
    /// Index of `threshold` in the feature's cuts: `x <= threshold` ⇔ `bin(x) <= cut`.
    cut: u32,
    /// Row flags that send a value the default way (by missing type).
    missing_mask: u8,
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

    /// The same decision on a quantized value (`bin`, `flags`); `x` is the raw
    /// value, read only by categorical nodes.
    #[inline(always)]
    pub(crate) fn goes_left_quantized(&self, bin: u32, flags: u8, x: f64, bitsets: &[u32]) -> bool {
        if self.kind == CATEGORICAL {
            return self.goes_left(x, bitsets);
        }
        if flags & self.missing_mask != 0 {
            self.default_left
        } else {
            bin <= self.cut
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
    /// Per feature: the sorted distinct thresholds of its numeric nodes.
    cuts: Vec<Vec<f64>>,
    num_features: usize,
    sigmoid: f64,
}

/// A row quantized against a model's cuts.
pub(crate) struct QuantizedRow {
    pub(crate) bins: Vec<u32>,
    pub(crate) flags: Vec<u8>,
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
                            cut: 0,
                            missing_mask: match kind {
                                NUMERIC_ZERO => IS_NAN | IS_ZERO,
                                NUMERIC_NAN => IS_NAN,
                                _ => 0,
                            },
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
        let mut trees: Vec<FlatTree> = trees;
        let mut cuts: Vec<Vec<f64>> = vec![Vec::new(); model.num_features()];
        for tree in &trees {
            for node in &tree.nodes {
                if node.kind != CATEGORICAL
                    && let Some(c) = cuts.get_mut(node.feature())
                {
                    c.push(node.threshold);
                }
            }
        }
        for c in &mut cuts {
            c.sort_by(f64::total_cmp);
            c.dedup();
        }
        for tree in &mut trees {
            for node in &mut tree.nodes {
                if node.kind != CATEGORICAL {
                    let feature_cuts = &cuts[node.feature()];
                    node.cut = feature_cuts.partition_point(|c| *c < node.threshold) as u32;
                }
            }
        }
        Predictor {
            trees,
            bitsets,
            cuts,
            num_features: model.num_features(),
            sigmoid: model.sigmoid,
        }
    }

    /// Quantizes a row into `out` (reused between rows).
    pub(crate) fn quantize(&self, row: &[f64], out: &mut QuantizedRow) {
        out.bins.resize(self.num_features, 0);
        out.flags.resize(self.num_features, 0);
        for (f, cuts) in self.cuts.iter().enumerate() {
            let x = row.get(f).copied().unwrap_or(f64::NAN);
            let nan = x.is_nan();
            let zero = !nan && x.abs() <= ZERO_THRESHOLD;
            // NaN reads as 0.0 for nodes that do not treat it as missing.
            let value = if nan || zero { 0.0 } else { x };
            out.bins[f] = cuts.partition_point(|c| *c < value) as u32;
            out.flags[f] = if nan {
                IS_NAN
            } else if zero {
                IS_ZERO
            } else {
                0
            };
        }
    }

    pub(crate) fn empty_row() -> QuantizedRow {
        QuantizedRow {
            bins: Vec::new(),
            flags: Vec::new(),
        }
    }

    #[inline]
    fn predict_quantized(&self, row: &[f64], q: &QuantizedRow) -> f64 {
        let mut sum = 0.0;
        for tree in &self.trees {
            let mut node = if tree.nodes.is_empty() { -1 } else { 0i32 };
            while node >= 0 {
                let n = &tree.nodes[node as usize];
                let f = n.feature();
                let (bin, flags) = (
                    q.bins.get(f).copied().unwrap_or(0),
                    q.flags.get(f).copied().unwrap_or(IS_NAN),
                );
                let x = row.get(f).copied().unwrap_or(f64::NAN);
                node =
                    n.children[usize::from(!n.goes_left_quantized(bin, flags, x, &self.bitsets))];
            }
            sum += tree.leaf_value[!node as usize];
        }
        sum
    }

    /// Number of input features.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The log-odds margin of one row; absent trailing values read as missing.
    /// The row is quantized once against the model's cuts, then every node
    /// compares integers.
    pub fn predict_raw(&self, row: &[f64]) -> f64 {
        let mut q = Self::empty_row();
        self.quantize(row, &mut q);
        self.predict_quantized(row, &q)
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
                let mut q = Self::empty_row();
                for (margin, row) in margins.iter_mut().zip(block.chunks_exact(width)) {
                    self.quantize(row, &mut q);
                    *margin = self.predict_quantized(row, &q);
                }
            });
        Ok(out)
    }
}
