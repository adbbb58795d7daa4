//! A flat, cache-friendly copy of a model for the hot paths (prediction and
//! the per-node decisions of TreeSHAP). Built once from a [`Model`]; routes
//! exactly as [`crate::Split::goes_left`] does (tested against it).

use rayon::prelude::*;

use crate::GbdtError;
use crate::model::{Model, row_count};
use crate::tree::{MissingType, Split, ZERO_THRESHOLD, category_code};

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
                let Some(category) = category_code(x) else {
                    return false;
                };
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

/// Most leaves of a tree that [`Scorer`] takes (one bit per leaf).
const SCORED_LEAVES: usize = 64;

/// A node of a scored tree, as a row going right at it sees it.
#[derive(Debug, Clone, Copy)]
struct RightTurn {
    tree: u32,
    /// Bit of the node in the tree's decision mask.
    node: u16,
    /// The tree's leaves (bit: depth-first position) that stay possible when
    /// the row goes right here: all but the left subtree's.
    keep: u64,
}

/// A numeric node as [`Scorer`] visits it, 24 bytes.
#[derive(Debug, Clone, Copy)]
struct ScoredNode {
    turn: RightTurn,
    cut: u32,
    missing_mask: u8,
    default_left: bool,
}

/// A categorical feature's nodes (in scored trees) by the row's category.
#[derive(Debug, Clone)]
struct CategoryLists {
    feature: u32,
    /// Per category `0..categories`, then one for every other value (missing,
    /// negative, past the bitsets), which goes right everywhere: ranges into
    /// [`Scorer::category_nodes`] of the nodes it goes right at.
    ranges: Vec<(u32, u32)>,
}

/// Most (category, node) pairs a feature's lists may hold (16 MiB), and all
/// features' lists together (64 MiB); past either, a feature's nodes are
/// decided one by one instead.
const MAX_CATEGORY_ENTRIES: usize = 1 << 20;
const MAX_TOTAL_CATEGORY_ENTRIES: usize = 1 << 22;

/// QuickScorer (Lucchese et al., SIGIR 2015) over quantized rows: a row's
/// leaf in each tree is found without walking it. Start every tree with all
/// leaves possible; every node the row goes right at rules out its left
/// subtree; the leftmost leaf left is the exit leaf. A feature's numeric nodes
/// are sorted by cut, so the nodes a row goes right at are a prefix (`cut <
/// bin`) and the scan stops at the first node it goes left at: the work is the
/// right-going nodes only, with no data-dependent branch per node, where a
/// walk mispredicts about every other node.
#[derive(Debug, Clone)]
struct Scorer {
    /// Every scored tree's numeric nodes, by feature, then by cut.
    numeric: Vec<ScoredNode>,
    /// Per feature: its range in `numeric`.
    ranges: Vec<(u32, u32)>,
    /// Per categorical feature, the nodes each category goes right at.
    categorical: Vec<CategoryLists>,
    /// (tree, keep) of those nodes, list after list.
    category_nodes: Vec<RightTurn>,
    /// Categorical nodes of features with too many categories for lists:
    /// (tree, node, keep), decided one by one.
    decided: Vec<(u32, u32, u64)>,
    /// Per tree: leaf values by depth-first position, `SCORED_LEAVES` apart;
    /// trees with more leaves are walked (`scored[t] == false`).
    values: Vec<f64>,
    scored: Vec<bool>,
}

impl Scorer {
    fn new(trees: &[FlatTree], bitsets: &[u32], num_features: usize) -> Scorer {
        let mut by_feature: Vec<Vec<ScoredNode>> = vec![Vec::new(); num_features];
        // Per feature: (tree, node, keep) of its categorical nodes.
        let mut categorical_by_feature: Vec<Vec<(u32, u32, u64)>> = vec![Vec::new(); num_features];
        let mut values = vec![0.0; trees.len() * SCORED_LEAVES];
        let mut scored = vec![false; trees.len()];
        for (t, tree) in trees.iter().enumerate() {
            if tree.leaf_value.len() > SCORED_LEAVES
                || tree.nodes.len() + 1 != tree.leaf_value.len()
            {
                continue;
            }
            scored[t] = true;
            let slots = &mut values[t * SCORED_LEAVES..(t + 1) * SCORED_LEAVES];
            if tree.nodes.is_empty() {
                slots[0] = tree.leaf_value.first().copied().unwrap_or(0.0);
                continue;
            }
            // Depth-first leaf positions; each node's left subtree is a range of them.
            let mut position = 0;
            let mut left_ranges = vec![(0u32, 0u32); tree.nodes.len()];
            fn walk(
                tree: &FlatTree,
                child: i32,
                position: &mut u32,
                slots: &mut [f64],
                left_ranges: &mut [(u32, u32)],
            ) {
                if child < 0 {
                    if let Some(slot) = slots.get_mut(*position as usize) {
                        *slot = tree.leaf_value.get(!child as usize).copied().unwrap_or(0.0);
                    }
                    *position += 1;
                    return;
                }
                let n = child as usize;
                let start = *position;
                walk(
                    tree,
                    tree.nodes[n].children[0],
                    position,
                    slots,
                    left_ranges,
                );
                left_ranges[n] = (start, *position);
                walk(
                    tree,
                    tree.nodes[n].children[1],
                    position,
                    slots,
                    left_ranges,
                );
            }
            walk(tree, 0, &mut position, slots, &mut left_ranges);
            for (n, (node, &(start, end))) in tree.nodes.iter().zip(&left_ranges).enumerate() {
                let left_leaves = (start..end).fold(0u64, |mask, p| mask | 1 << p);
                let keep = !left_leaves;
                if node.kind == CATEGORICAL {
                    if let Some(list) = categorical_by_feature.get_mut(node.feature()) {
                        list.push((t as u32, n as u32, keep));
                    }
                } else if let Some(list) = by_feature.get_mut(node.feature()) {
                    list.push(ScoredNode {
                        cut: node.cut,
                        turn: RightTurn {
                            tree: t as u32,
                            node: n as u16,
                            keep,
                        },
                        missing_mask: node.missing_mask,
                        default_left: node.default_left,
                    });
                }
            }
        }
        let mut numeric = Vec::new();
        let mut ranges = Vec::with_capacity(num_features);
        for mut list in by_feature {
            // Stable: equal cuts keep tree order, so the sums do not depend on sorting.
            list.sort_by_key(|node| node.cut);
            let start = numeric.len() as u32;
            numeric.extend(list);
            ranges.push((start, numeric.len() as u32));
        }
        let mut categorical = Vec::new();
        let mut category_nodes = Vec::new();
        let mut decided = Vec::new();
        let turn = |&(tree, node, keep): &(u32, u32, u64)| RightTurn {
            tree,
            node: node as u16,
            keep,
        };
        for (feature, nodes) in categorical_by_feature.into_iter().enumerate() {
            let node_at = |&(t, n, _): &(u32, u32, u64)| &trees[t as usize].nodes[n as usize];
            let categories = nodes
                .iter()
                .map(|entry| node_at(entry).bitset_len as usize * 32)
                .max()
                .unwrap_or(0);
            if nodes.is_empty() {
                continue;
            }
            let bound = categories.saturating_mul(nodes.len());
            if bound > MAX_CATEGORY_ENTRIES
                || category_nodes.len().saturating_add(bound) > MAX_TOTAL_CATEGORY_ENTRIES
            {
                decided.extend(nodes);
                continue;
            }
            let mut ranges = Vec::with_capacity(categories + 1);
            for category in 0..categories {
                let start = category_nodes.len() as u32;
                category_nodes.extend(
                    nodes
                        .iter()
                        .filter(|entry| !node_at(entry).goes_left(category as f64, bitsets))
                        .map(turn),
                );
                ranges.push((start, category_nodes.len() as u32));
            }
            let start = category_nodes.len() as u32;
            category_nodes.extend(nodes.iter().map(turn));
            ranges.push((start, category_nodes.len() as u32));
            categorical.push(CategoryLists {
                feature: feature as u32,
                ranges,
            });
        }
        Scorer {
            numeric,
            ranges,
            categorical,
            category_nodes,
            decided,
            values,
            scored,
        }
    }
}

/// The compiled model.
#[derive(Debug, Clone)]
pub struct Predictor {
    pub(crate) trees: Vec<FlatTree>,
    pub(crate) bitsets: Vec<u32>,
    /// Per feature: the sorted distinct thresholds of its numeric nodes.
    cuts: Vec<Vec<f64>>,
    scorer: Scorer,
    num_features: usize,
    sigmoid: f64,
}

/// A row quantized against a model's cuts, and the scorer's per-tree state.
pub(crate) struct QuantizedRow {
    pub(crate) bins: Vec<u32>,
    pub(crate) flags: Vec<u8>,
    possible_leaves: Vec<u64>,
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
            scorer: Scorer::new(&trees, &bitsets, model.num_features()),
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
            possible_leaves: Vec::new(),
        }
    }

    /// Calls `turn(tree, node bit, keep)` for every node of a scored tree the
    /// row goes right at (and, where that is decided without a branch, with
    /// `(tree, 0, !0)` for some it goes left at, which change nothing).
    #[inline(always)]
    fn for_each_right_turn(
        &self,
        row: &[f64],
        bins: &[u32],
        flags: &[u8],
        mut turn: impl FnMut(usize, u64, u64),
    ) {
        let scorer = &self.scorer;
        for (f, &(start, end)) in scorer.ranges.iter().enumerate() {
            let Some(nodes) = scorer.numeric.get(start as usize..end as usize) else {
                continue;
            };
            let bin = bins.get(f).copied().unwrap_or(0);
            let flags = flags.get(f).copied().unwrap_or(IS_NAN);
            if flags == 0 {
                for node in nodes {
                    if node.cut >= bin {
                        break;
                    }
                    let t = node.turn;
                    turn(t.tree as usize, 1 << t.node, t.keep);
                }
            } else {
                for node in nodes {
                    let right = if flags & node.missing_mask != 0 {
                        !node.default_left
                    } else {
                        node.cut < bin
                    };
                    let t = node.turn;
                    let (bit, keep) = if right {
                        (1 << t.node, t.keep)
                    } else {
                        (0, !0)
                    };
                    turn(t.tree as usize, bit, keep);
                }
            }
        }
        for lists in &scorer.categorical {
            let x = row.get(lists.feature as usize).copied().unwrap_or(f64::NAN);
            let other = lists.ranges.len() - 1;
            let category = category_code(x).map_or(other, |c| (c as usize).min(other));
            let Some(&(start, end)) = lists.ranges.get(category) else {
                continue;
            };
            for t in scorer
                .category_nodes
                .get(start as usize..end as usize)
                .unwrap_or(&[])
            {
                turn(t.tree as usize, 1 << t.node, t.keep);
            }
        }
        for &(t, n, keep) in &scorer.decided {
            let Some(node) = self
                .trees
                .get(t as usize)
                .and_then(|tree| tree.nodes.get(n as usize))
            else {
                continue;
            };
            let x = row.get(node.feature()).copied().unwrap_or(f64::NAN);
            let right = !node.goes_left(x, &self.bitsets);
            let (bit, keep) = if right { (1 << n, keep) } else { (0, !0) };
            turn(t as usize, bit, keep);
        }
    }

    /// Per tree, the row's decisions (bit `n`: goes left at node `n`), for
    /// scored trees; 0 for the others (more than 64 leaves).
    pub(crate) fn decision_bits(&self, row: &[f64], q: &mut QuantizedRow, bits: &mut Vec<u64>) {
        self.quantize(row, q);
        bits.clear();
        bits.extend(
            self.trees
                .iter()
                .zip(&self.scorer.scored)
                .map(|(tree, &scored)| {
                    if scored {
                        (1u64 << tree.nodes.len()) - 1
                    } else {
                        0
                    }
                }),
        );
        self.for_each_right_turn(row, &q.bins, &q.flags, |tree, bit, _| {
            if let Some(b) = bits.get_mut(tree) {
                *b &= !bit;
            }
        });
    }

    /// Whether tree `t` has decision bits from [`Predictor::decision_bits`].
    pub(crate) fn is_scored(&self, t: usize) -> bool {
        self.scorer.scored.get(t).copied().unwrap_or(false)
    }

    fn predict_quantized(&self, row: &[f64], q: &mut QuantizedRow) -> f64 {
        let QuantizedRow {
            bins,
            flags,
            possible_leaves: possible,
        } = q;
        possible.clear();
        possible.resize(self.trees.len(), !0);
        self.for_each_right_turn(row, bins, flags, |tree, _, keep| {
            if let Some(leaves) = possible.get_mut(tree) {
                *leaves &= keep;
            }
        });
        let scorer = &self.scorer;
        let mut sum = 0.0;
        for (t, (tree, &leaves)) in self.trees.iter().zip(possible.iter()).enumerate() {
            sum += if scorer.scored[t] {
                let position = t * SCORED_LEAVES + leaves.trailing_zeros() as usize;
                scorer.values.get(position).copied().unwrap_or(0.0)
            } else {
                self.walk(tree, row, bins, flags)
            };
        }
        sum
    }

    /// The leaf value of a row in one tree, by walking it.
    fn walk(&self, tree: &FlatTree, row: &[f64], bins: &[u32], flags: &[u8]) -> f64 {
        let mut node = if tree.nodes.is_empty() { -1 } else { 0i32 };
        while node >= 0 {
            let n = &tree.nodes[node as usize];
            let f = n.feature();
            let (bin, flags) = (
                bins.get(f).copied().unwrap_or(0),
                flags.get(f).copied().unwrap_or(IS_NAN),
            );
            let x = row.get(f).copied().unwrap_or(f64::NAN);
            node = n.children[usize::from(!n.goes_left_quantized(bin, flags, x, &self.bitsets))];
        }
        tree.leaf_value.get(!node as usize).copied().unwrap_or(0.0)
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
        self.predict_quantized(row, &mut q)
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
                    *margin = self.predict_quantized(row, &mut q);
                }
            });
        Ok(out)
    }
}
