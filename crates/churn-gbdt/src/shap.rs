//! Exact path-dependent TreeSHAP, fast enough for a request path.
//!
//! For a leaf `l` with value `v` whose root path tests the unique features `j`
//! (repeats merged: cover fractions multiply into `z_j`, conditions AND into
//! `o_j ∈ {0, 1}`), Lundberg et al.'s path-dependent SHAP value of feature `i` is
//!
//! `φ_i += v · (o_i − z_i) · Σ_{S ⊆ P∖i} w(|S|, d) Π_{j∈S} o_j Π_{j∉S} z_j`,
//!
//! and the Shapley weight is a Beta integral, `w(s, d) = ∫₀¹ pˢ (1 − p)^(d−1−s) dp`,
//! so the sum is `∫₀¹ Π_{j≠i} (z_j (1 − p) + o_j p) dp`: a polynomial of degree
//! `d − 1`, integrated exactly by Gauss–Legendre with `⌈d/2⌉` nodes. With
//! `P(p) = Π_j f_j(p)`, every feature with `o = 0` gets `−v ∫ P/(1 − p)` and a
//! feature with `o = 1` gets `v (1 − z) ∫ P / (z (1 − p) + p)`: `O(d · Q)`
//! multiply-adds per leaf, no recursion, no allocation, and no division by `z`
//! (LightGBM's unwinding divides).
//!
//! A leaf's shares depend on the row only through its hot flags, so most of
//! that work is done once, at build time (FastTreeSHAP v2's idea, Yang 2022,
//! here per subtree rather than per leaf): every leaf below a node `n` depends
//! on the row only through which features on the path to `n` are hot and which
//! way the row goes at the nodes below `n`. A *block* is such a subtree with at
//! most `BLOCK_TESTS` (10) of those bits and `BLOCK_WIDTH` (8) features; its table
//! holds, for every combination, the summed shares of all its leaves, one cache
//! line per combination. Per row and tree, explaining is then: the node
//! decisions, one index and one line per block (prefetched a tree ahead, since
//! the tables are megabytes), and the per-row integral only for leaves in no
//! block (paths of more than 8 features, trees of 64 or more
//! internal nodes, or tables past the memory budget). A 31-leaf tree is about
//! eight blocks.
//!
//! Covers are training-row counts, as LightGBM's `pred_contrib` uses. The
//! reference recursion ([`reference_contributions`]) is kept as the test oracle.

use rayon::prelude::*;

use crate::GbdtError;
use crate::compiled::{FlatTree, Predictor, QuantizedRow};
use crate::model::{Model, row_count};
use crate::prefetch::prefetch;
use crate::tree::Tree;

/// Gauss–Legendre nodes and weights on `[0, 1]` (Newton on Legendre polynomials).
pub(crate) fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    let nf = n as f64;
    for i in 0..n.div_ceil(2) {
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            let (mut p1, mut p2) = (1.0, 0.0);
            for j in 1..=n {
                let p3 = p2;
                p2 = p1;
                let jf = j as f64;
                p1 = ((2.0 * jf - 1.0) * z * p2 - (jf - 1.0) * p3) / jf;
            }
            derivative = nf * (z * p1 - p2) / (z * z - 1.0);
            let step = p1 / derivative;
            z -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - z * z) * derivative * derivative);
        // x = ∓z on [−1, 1] → p = (x + 1) / 2 on [0, 1], weight halves.
        nodes[i] = (1.0 - z) / 2.0;
        nodes[n - 1 - i] = (1.0 + z) / 2.0;
        weights[i] = w / 2.0;
        weights[n - 1 - i] = w / 2.0;
    }
    (nodes, weights)
}

/// Row-index tests of a block (at most `2^BLOCK_TESTS` rows) and shares per row.
const BLOCK_TESTS: usize = 10;
const BLOCK_WIDTH: usize = 8;

/// Memory the lookup tables of [`Explainer::new`] may take: 64 MiB, about
/// 550 trees of 31 leaves. Past it, blocks get smaller and the widest paths
/// fall back to per-row integration. Each row reads one table line per block,
/// so a larger table costs cache misses, not arithmetic.
pub const DEFAULT_TABLE_BUDGET: usize = 64 << 20;

/// One cache line of shares: a table row is read with one line fill.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([f64; BLOCK_WIDTH]);

/// A subtree whose leaves' shares are looked up together (FastTreeSHAP v2's
/// idea, Yang 2022, applied to subtrees: every leaf below node `n` depends on
/// the row only through which features on the path to `n` are hot and which
/// way the row goes at the subtree's own nodes, so all combinations can be
/// precomputed). A single leaf is a block with no nodes of its own.
#[derive(Debug, Clone)]
struct Block {
    /// Bit `j` of the row index is set when `(decisions ^ want[j]) & mask[j] == 0`:
    /// first one test per feature on the path to the block (all its nodes
    /// agree: the feature is hot), then one per node of the block (goes left).
    /// Unused tests look at bit 63, never set in the decisions, and stay 0.
    mask: [u64; BLOCK_TESTS],
    want: [u64; BLOCK_TESTS],
    /// Where share `k` of a row goes: a feature, or a discard slot for padding.
    slot: [u32; BLOCK_WIDTH],
    /// Index of the block's first row in [`Explainer::lines`].
    start: u32,
}

impl Block {
    /// Index in [`Explainer::lines`] of the row the decisions `bits` select.
    #[inline(always)]
    fn row(&self, bits: u64) -> usize {
        let mut index = 0;
        for j in 0..BLOCK_TESTS {
            index |= usize::from((bits ^ self.want[j]) & self.mask[j] == 0) << j;
        }
        self.start as usize + index
    }
}

/// One unique feature on a leaf's path, for per-row integration.
#[derive(Debug, Clone)]
struct Element {
    feature: u32,
    /// Range into [`TreeTables::conditions`].
    conditions: (u32, u32),
    /// For trees of at most 64 internal nodes: the element is hot when
    /// `(decision_bits ^ want) & mask == 0` (bit n: node n on the path / goes left).
    mask: u64,
    want: u64,
    /// Offset into [`TreeTables::coefficients`] of `f1[Q], f0[Q], g1[Q]`.
    coefficients: u32,
}

/// A leaf whose shares are integrated per row.
#[derive(Debug, Clone)]
struct Leaf {
    value: f64,
    /// Quadrature order (index into [`Explainer::quadrature`]).
    order: u32,
    /// Range into [`TreeTables::elements`].
    elements: (u32, u32),
}

#[derive(Debug, Clone)]
struct TreeTables {
    blocks: Vec<Block>,
    /// Leaves outside any block.
    leaves: Vec<Leaf>,
    elements: Vec<Element>,
    /// (internal node, goes left).
    conditions: Vec<(u32, bool)>,
    coefficients: Vec<f64>,
}

/// Per quadrature order: `zero_scale[q] = w_q / (1 − p_q)`.
#[derive(Debug, Clone)]
struct Quadrature {
    nodes: Vec<f64>,
    weights: Vec<f64>,
    zero_scale: Vec<f64>,
}

/// Precomputed tables for explaining one model; build once, explain many rows.
#[derive(Debug, Clone)]
pub struct Explainer {
    num_features: usize,
    base_value: f64,
    trees: Vec<TreeTables>,
    /// Every block's rows, tree after tree, in one allocation.
    lines: Vec<Line>,
    quadrature: Vec<Quadrature>,
    max_order: usize,
    max_nodes: usize,
    max_elements: usize,
    max_blocks: usize,
    /// The compiled trees: their nodes, and every node decision of a row at once.
    predictor: Predictor,
}

/// Scratch space for one thread.
struct Scratch {
    quantized: QuantizedRow,
    /// Per tree: bit `n` set when the row goes left at node `n`.
    tree_bits: Vec<u64>,
    /// Per node of a tree too large for `tree_bits`: the row goes left.
    decisions: Vec<bool>,
    hot: Vec<bool>,
    product: Vec<f64>,
    /// Contributions per feature, then `BLOCK_WIDTH` discard slots.
    sums: Vec<f64>,
    /// The table lines a tree's blocks read, for this tree and the one before.
    rows: Vec<u32>,
    pending_rows: Vec<u32>,
}

/// One unique feature on a root-to-leaf path, before it is lowered.
struct PathFeature {
    feature: u32,
    /// Product of the cover fractions of its nodes on the path.
    z: f64,
    /// Its nodes: (internal node, goes left).
    conditions: Vec<(u32, bool)>,
}

struct PathLeaf {
    value: f64,
    features: Vec<PathFeature>,
}

/// How a tree's leaves are explained.
enum Plan {
    /// The subtree under the path `path` (node, goes left, feature), whose own
    /// nodes are `nodes` and whose leaves are `leaves` (depth-first order).
    Block {
        path: Vec<(u32, bool, u32)>,
        nodes: Vec<u32>,
        leaves: std::ops::Range<usize>,
    },
    /// A leaf integrated per row.
    Integrated(usize),
}

/// Quadrature order that integrates a path of `width` unique features exactly.
fn order_for(width: usize) -> usize {
    width.div_ceil(2).max(1)
}

impl Explainer {
    /// Builds the tables within [`DEFAULT_TABLE_BUDGET`].
    pub fn new(model: &Model) -> Explainer {
        Self::with_table_budget(model, DEFAULT_TABLE_BUDGET)
    }

    /// Builds the tables, with the largest blocks whose tables fit in `budget`
    /// bytes; leaves outside any block are integrated per row. The
    /// contributions are the same either way (up to rounding); `0` turns the
    /// tables off. Build cost: per block, `2^tests` rows × its leaves × their
    /// path features × quadrature order.
    pub fn with_table_budget(model: &Model, budget: usize) -> Explainer {
        let predictor = Predictor::new(model);
        let paths: Vec<Vec<PathLeaf>> = model.trees.iter().map(leaf_paths).collect();
        // Trees of up to 63 internal nodes keep bit 63 of the decision mask
        // free for the unused tests, which must never pass.
        let block_trees = |flat: &FlatTree| flat.nodes.len() < 64;
        let plans_with = |tests: usize| -> Vec<Vec<Plan>> {
            model
                .trees
                .iter()
                .zip(&predictor.trees)
                .map(|(tree, flat)| plan_tree(tree, if block_trees(flat) { tests } else { 0 }))
                .collect()
        };
        // The widest blocks that fit in the budget; no blocks if none do.
        let (plans, table_bytes) = (1..=BLOCK_TESTS)
            .rev()
            .find_map(|tests| {
                let candidate = plans_with(tests);
                let bytes: usize = candidate.iter().flatten().map(plan_bytes).sum();
                (bytes <= budget).then_some((candidate, bytes))
            })
            .unwrap_or_else(|| (plans_with(0), 0));
        let mut lines: Vec<Line> = Vec::with_capacity(table_bytes / std::mem::size_of::<Line>());
        let max_order = paths
            .iter()
            .flatten()
            .map(|leaf| order_for(leaf.features.len()))
            .max()
            .unwrap_or(1);
        let quadrature: Vec<Quadrature> = (0..=max_order)
            .map(|order| {
                let (nodes, weights) = gauss_legendre(order);
                let zero_scale = nodes
                    .iter()
                    .zip(&weights)
                    .map(|(p, w)| w / (1.0 - p))
                    .collect();
                Quadrature {
                    nodes,
                    weights,
                    zero_scale,
                }
            })
            .collect();
        // Trees are lowered in parallel, each with its own lines, then laid end
        // to end (block starts shifted by the lines before them).
        let lowered: Vec<(TreeTables, Vec<Line>)> = paths
            .par_iter()
            .zip(&plans)
            .zip(&predictor.trees)
            .map(|((leaves, plan), flat)| {
                let mut tree_lines = Vec::new();
                let tables = lower_tree(
                    leaves,
                    plan,
                    flat,
                    model.num_features(),
                    &quadrature,
                    &mut tree_lines,
                );
                (tables, tree_lines)
            })
            .collect();
        let trees: Vec<TreeTables> = lowered
            .into_iter()
            .map(|(mut tables, tree_lines)| {
                let shift = lines.len() as u32;
                for block in &mut tables.blocks {
                    block.start += shift;
                }
                lines.extend(tree_lines);
                tables
            })
            .collect();
        let max_elements = trees
            .iter()
            .flat_map(|t| {
                t.leaves
                    .iter()
                    .map(|l| (l.elements.1 - l.elements.0) as usize)
            })
            .max()
            .unwrap_or(0);
        let max_nodes = predictor
            .trees
            .iter()
            .map(|t| t.nodes.len())
            .max()
            .unwrap_or(0);
        Explainer {
            predictor,
            max_blocks: trees.iter().map(|t| t.blocks.len()).max().unwrap_or(0),
            max_elements,
            num_features: model.num_features(),
            base_value: model.expected_value(),
            trees,
            lines,
            quadrature,
            max_order,
            max_nodes,
        }
    }

    /// The base value (mean training margin): contributions sum to `margin − base_value`.
    pub fn base_value(&self) -> f64 {
        self.base_value
    }

    /// Number of features.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The compiled model it explains, to predict with without compiling it twice.
    pub fn predictor(&self) -> &Predictor {
        &self.predictor
    }

    /// Bytes held by the lookup tables (see [`Explainer::with_table_budget`]).
    pub fn table_bytes(&self) -> usize {
        std::mem::size_of_val(self.lines.as_slice())
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            quantized: Predictor::empty_row(),
            tree_bits: Vec::with_capacity(self.trees.len()),
            decisions: vec![false; self.max_nodes],
            hot: vec![false; self.max_elements],
            product: vec![0.0; self.max_order.max(1)],
            sums: vec![0.0; self.num_features + BLOCK_WIDTH],
            rows: Vec::with_capacity(self.max_blocks),
            pending_rows: Vec::with_capacity(self.max_blocks),
        }
    }

    /// SHAP values of one row: `num_features` contributions (log-odds) followed
    /// by the base value, LightGBM's `pred_contrib` layout. They sum to the margin.
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.num_features + 1];
        self.contributions_into(row, &mut out, &mut self.scratch());
        out
    }

    fn contributions_into(&self, row: &[f64], phi: &mut [f64], scratch: &mut Scratch) {
        let Scratch {
            quantized,
            tree_bits,
            decisions,
            hot,
            product,
            sums,
            rows,
            pending_rows,
        } = scratch;
        sums.fill(0.0);
        // The table rows are random reads into megabytes: each tree's are
        // found and prefetched one tree ahead of being added up.
        let mut pending: Option<&TreeTables> = None;
        self.predictor.decision_bits(row, quantized, tree_bits);
        for (t, (tree, flat)) in self.trees.iter().zip(&self.predictor.trees).enumerate() {
            let small = flat.nodes.len() < 64;
            let bits = if self.predictor.is_scored(t) {
                tree_bits.get(t).copied().unwrap_or(0)
            } else {
                let mut bits = 0u64;
                for (n, (decision, node)) in decisions.iter_mut().zip(&flat.nodes).enumerate() {
                    let x = row.get(node.feature()).copied().unwrap_or(f64::NAN);
                    *decision = node.goes_left(x, &self.predictor.bitsets);
                    bits |= u64::from(*decision) << (n & 63);
                }
                bits
            };
            rows.clear();
            for block in &tree.blocks {
                let at = block.row(bits);
                prefetch(&self.lines, at);
                rows.push(at as u32);
            }
            if let Some(previous) = pending {
                add_table_shares(previous, pending_rows, &self.lines, sums);
            }
            std::mem::swap(rows, pending_rows);
            pending = Some(tree);
            for leaf in &tree.leaves {
                let elements = &tree.elements[leaf.elements.0 as usize..leaf.elements.1 as usize];
                if elements.is_empty() {
                    continue;
                }
                let hot = &mut hot[..elements.len()];
                if small {
                    for (flag, e) in hot.iter_mut().zip(elements) {
                        *flag = (bits ^ e.want) & e.mask == 0;
                    }
                } else {
                    for (flag, e) in hot.iter_mut().zip(elements) {
                        // No early exit: a data-dependent branch here mispredicts.
                        *flag = tree.conditions[e.conditions.0 as usize..e.conditions.1 as usize]
                            .iter()
                            .fold(true, |all, &(node, left)| {
                                all & (decisions[node as usize] == left)
                            });
                    }
                }
                // A fixed quadrature order lets the compiler unroll and vectorise.
                let zero_scale = &self.quadrature[leaf.order as usize].zero_scale;
                macro_rules! by_order {
                    ($($q:literal)+) => {
                        match leaf.order {
                            $($q => leaf_shares::<$q>(tree, leaf, elements, hot, zero_scale, sums),)+
                            _ => leaf_shares_any(tree, leaf, elements, hot, zero_scale, product, sums),
                        }
                    };
                }
                by_order!(1 2 3 4 5 6 7 8);
            }
        }
        if let Some(previous) = pending {
            add_table_shares(previous, pending_rows, &self.lines, sums);
        }
        phi[..self.num_features].copy_from_slice(&sums[..self.num_features]);
        phi[self.num_features] = self.base_value;
    }

    /// Mean |SHAP| per feature over rows (row-major): the global importance
    /// that reports plot, on the log-odds scale.
    pub fn mean_abs_contributions(&self, rows: &[f64]) -> Result<Vec<f64>, GbdtError> {
        let phi = self.contributions_batch(rows)?;
        let stride = self.num_features + 1;
        let n = (phi.len() / stride).max(1) as f64;
        let mut mean = vec![0.0; self.num_features];
        for row in phi.chunks_exact(stride) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v.abs();
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        Ok(mean)
    }

    /// SHAP values of many rows (row-major), `num_features + 1` per row, in parallel.
    pub fn contributions_batch(&self, rows: &[f64]) -> Result<Vec<f64>, GbdtError> {
        let width = self.num_features.max(1);
        let stride = self.num_features + 1;
        let mut out = vec![0.0; row_count(rows.len(), width)? * stride];
        out.par_chunks_mut(64 * stride)
            .zip(rows.par_chunks(64 * width))
            .for_each(|(phis, block)| {
                let mut scratch = self.scratch();
                for (phi, row) in phis.chunks_exact_mut(stride).zip(block.chunks_exact(width)) {
                    self.contributions_into(row, phi, &mut scratch);
                }
            });
        Ok(out)
    }
}

/// Adds the table lines `rows` (one per block, in order) of `tree`.
#[inline(always)]
fn add_table_shares(tree: &TreeTables, rows: &[u32], lines: &[Line], sums: &mut [f64]) {
    for (block, &at) in tree.blocks.iter().zip(rows) {
        let Some(line) = lines.get(at as usize) else {
            continue;
        };
        for (&slot, share) in block.slot.iter().zip(&line.0) {
            if let Some(sum) = sums.get_mut(slot as usize) {
                *sum += share;
            }
        }
    }
}

/// Most unique features on a leaf path that the fixed-order kernel takes
/// (orders 1..=8 cover paths of up to 16 features anyway).
const MAX_FAST_ELEMENTS: usize = 16;

/// One leaf's shares with a compile-time quadrature order `Q`.
#[inline(always)]
fn leaf_shares<const Q: usize>(
    tree: &TreeTables,
    leaf: &Leaf,
    elements: &[Element],
    hot: &[bool],
    zero_scale: &[f64],
    phi: &mut [f64],
) {
    let mut product = [leaf.value; Q];
    for (e, &is_hot) in elements.iter().zip(hot) {
        let at = e.coefficients as usize + if is_hot { 0 } else { Q };
        let Some(factors) = tree.coefficients.get(at..at + Q) else {
            continue;
        };
        for q in 0..Q {
            product[q] *= factors[q];
        }
    }
    let mut zero_share = 0.0;
    for q in 0..Q {
        zero_share += product[q] * zero_scale[q];
    }
    // Every element is charged the cold share; the hot ones, gathered without
    // a branch, get it back plus their own share (few elements are hot).
    let mut hot_list = [0u16; MAX_FAST_ELEMENTS];
    let mut hot_count = 0;
    for (k, (e, &is_hot)) in elements.iter().zip(hot).enumerate() {
        if let Some(slot) = phi.get_mut(e.feature as usize) {
            *slot -= zero_share;
        }
        hot_list[hot_count] = k as u16;
        hot_count += usize::from(is_hot);
    }
    for &k in &hot_list[..hot_count] {
        let e = &elements[k as usize];
        let at = e.coefficients as usize + 2 * Q;
        let Some(g1) = tree.coefficients.get(at..at + Q) else {
            continue;
        };
        let mut share = zero_share;
        for q in 0..Q {
            share += product[q] * g1[q];
        }
        if let Some(slot) = phi.get_mut(e.feature as usize) {
            *slot += share;
        }
    }
}

/// The same for any order (very deep paths).
fn leaf_shares_any(
    tree: &TreeTables,
    leaf: &Leaf,
    elements: &[Element],
    hot: &[bool],
    zero_scale: &[f64],
    product: &mut [f64],
    phi: &mut [f64],
) {
    let order = leaf.order as usize;
    let product = &mut product[..order];
    product.fill(leaf.value);
    for (e, &is_hot) in elements.iter().zip(hot) {
        let at = e.coefficients as usize + if is_hot { 0 } else { order };
        for (p, f) in product.iter_mut().zip(&tree.coefficients[at..at + order]) {
            *p *= f;
        }
    }
    let zero_share: f64 = product.iter().zip(zero_scale).map(|(p, s)| p * s).sum();
    for (e, &is_hot) in elements.iter().zip(hot) {
        let feature = e.feature as usize;
        if is_hot {
            let at = e.coefficients as usize + 2 * order;
            let share: f64 = product
                .iter()
                .zip(&tree.coefficients[at..at + order])
                .map(|(p, g)| p * g)
                .sum();
            phi[feature] += share;
        } else {
            phi[feature] -= zero_share;
        }
    }
}

/// Every leaf's root path with repeated features merged.
fn leaf_paths(tree: &Tree) -> Vec<PathLeaf> {
    struct Step {
        feature: u32,
        z: f64,
        node: u32,
        left: bool,
    }
    fn walk(tree: &Tree, node: i32, path: &mut Vec<Step>, leaves: &mut Vec<PathLeaf>) {
        if node < 0 {
            let mut features: Vec<u32> = path.iter().map(|s| s.feature).collect();
            features.sort_unstable();
            features.dedup();
            let features = features
                .into_iter()
                .map(|feature| {
                    let steps = path.iter().filter(|s| s.feature == feature);
                    PathFeature {
                        feature,
                        z: steps.clone().map(|s| s.z).product(),
                        conditions: steps.map(|s| (s.node, s.left)).collect(),
                    }
                })
                .collect();
            leaves.push(PathLeaf {
                value: tree.leaf_value[!node as usize],
                features,
            });
            return;
        }
        let n = node as usize;
        let parent = tree.internal_count[n];
        for (child, left) in [(tree.left_child[n], true), (tree.right_child[n], false)] {
            // A parent no training row reached has no cover to share: z = 0
            // (LightGBM divides 0 by 0 there and returns NaN).
            let z = if parent > 0.0 {
                tree.child_count(child) / parent
            } else {
                0.0
            };
            path.push(Step {
                feature: tree.split_feature[n],
                z,
                node: n as u32,
                left,
            });
            walk(tree, child, path, leaves);
            path.pop();
        }
    }
    let mut leaves = Vec::new();
    if !tree.split.is_empty() {
        walk(tree, 0, &mut Vec::new(), &mut leaves);
    }
    leaves
}

/// Splits a tree into blocks of at most `tests` row-index tests and
/// `BLOCK_WIDTH` features, taking the largest subtrees first; leaves that fit
/// in no block are integrated per row.
fn plan_tree(tree: &Tree, tests: usize) -> Vec<Plan> {
    let mut plans = Vec::new();
    if !tree.split.is_empty() {
        plan_node(tree, 0, &mut Vec::new(), tests, &mut 0, &mut plans);
    }
    plans
}

/// Pushes the internal nodes under `node` (depth first) and returns its leaf count.
fn subtree_nodes(tree: &Tree, node: i32, nodes: &mut Vec<u32>) -> usize {
    if node < 0 {
        return 1;
    }
    nodes.push(node as u32);
    let n = node as usize;
    subtree_nodes(tree, tree.left_child[n], nodes) + subtree_nodes(tree, tree.right_child[n], nodes)
}

/// Sorted unique features of a path.
fn path_features(path: &[(u32, bool, u32)]) -> Vec<u32> {
    let mut features: Vec<u32> = path.iter().map(|step| step.2).collect();
    features.sort_unstable();
    features.dedup();
    features
}

fn plan_node(
    tree: &Tree,
    node: i32,
    path: &mut Vec<(u32, bool, u32)>,
    tests: usize,
    next_leaf: &mut usize,
    plans: &mut Vec<Plan>,
) {
    let mut nodes = Vec::new();
    let leaves = subtree_nodes(tree, node, &mut nodes);
    let mut features = path_features(path);
    let index_bits = features.len() + nodes.len();
    features.extend(nodes.iter().map(|&n| tree.split_feature[n as usize]));
    features.sort_unstable();
    features.dedup();
    if index_bits <= tests && features.len() <= BLOCK_WIDTH {
        plans.push(Plan::Block {
            path: path.clone(),
            nodes,
            leaves: *next_leaf..*next_leaf + leaves,
        });
        *next_leaf += leaves;
        return;
    }
    if node < 0 {
        plans.push(Plan::Integrated(*next_leaf));
        *next_leaf += 1;
        return;
    }
    let n = node as usize;
    for (child, left) in [(tree.left_child[n], true), (tree.right_child[n], false)] {
        path.push((n as u32, left, tree.split_feature[n]));
        plan_node(tree, child, path, tests, next_leaf, plans);
        path.pop();
    }
}

/// Bytes of a plan's table.
fn plan_bytes(plan: &Plan) -> usize {
    match plan {
        Plan::Block { path, nodes, .. } => {
            (1usize << (path_features(path).len() + nodes.len())) * std::mem::size_of::<Line>()
        }
        Plan::Integrated(_) => 0,
    }
}

/// The decision-mask test of a feature's conditions (nodes past 63 are not in the mask).
fn hot_mask(conditions: &[(u32, bool)]) -> (u64, u64) {
    let (mut mask, mut want) = (0u64, 0u64);
    for &(node, left) in conditions {
        if node < 64 {
            mask |= 1 << node;
            want |= u64::from(left) << node;
        }
    }
    (mask, want)
}

/// Lays one tree out for explaining as `plans` says.
fn lower_tree(
    leaves: &[PathLeaf],
    plans: &[Plan],
    flat: &FlatTree,
    num_features: usize,
    quadrature: &[Quadrature],
    lines: &mut Vec<Line>,
) -> TreeTables {
    let mut tables = TreeTables {
        blocks: Vec::new(),
        leaves: Vec::new(),
        elements: Vec::new(),
        conditions: Vec::new(),
        coefficients: Vec::new(),
    };
    for plan in plans {
        match plan {
            Plan::Block {
                path,
                nodes,
                leaves: range,
            } => {
                let Some(block_leaves) = leaves.get(range.clone()) else {
                    continue;
                };
                let block = lower_block(
                    path,
                    nodes,
                    block_leaves,
                    flat,
                    num_features,
                    quadrature,
                    lines,
                );
                tables.blocks.push(block);
            }
            Plan::Integrated(leaf) => {
                if let Some(leaf) = leaves.get(*leaf) {
                    lower_integrated(leaf, quadrature, &mut tables);
                }
            }
        }
    }
    tables
}

/// Appends a block's `2^tests` rows to `lines`: every row sums the shares of
/// all the block's leaves for the hot features and decisions its index encodes.
fn lower_block(
    path: &[(u32, bool, u32)],
    nodes: &[u32],
    leaves: &[PathLeaf],
    flat: &FlatTree,
    num_features: usize,
    quadrature: &[Quadrature],
    lines: &mut Vec<Line>,
) -> Block {
    const UNUSED: u64 = 1 << 63;
    let on_path = path_features(path);
    let mut block = Block {
        mask: [UNUSED; BLOCK_TESTS],
        want: [UNUSED; BLOCK_TESTS],
        slot: std::array::from_fn(|k| (num_features + k) as u32),
        start: lines.len() as u32,
    };
    for (j, &feature) in on_path.iter().enumerate() {
        let conditions: Vec<(u32, bool)> = path
            .iter()
            .filter(|step| step.2 == feature)
            .map(|step| (step.0, step.1))
            .collect();
        (block.mask[j], block.want[j]) = hot_mask(&conditions);
    }
    for (j, &node) in nodes.iter().enumerate() {
        block.mask[on_path.len() + j] = 1 << node;
        block.want[on_path.len() + j] = 1 << node;
    }
    let mut slots = on_path.clone();
    for &node in nodes {
        let feature = flat.nodes[node as usize].feature() as u32;
        if !slots.contains(&feature) {
            slots.push(feature);
        }
    }
    for (slot, &feature) in block.slot.iter_mut().zip(&slots) {
        *slot = feature;
    }
    // Per leaf and path feature: its row-index bit on the path to the block,
    // the bits of its nodes inside the block (with the way the leaf goes), and
    // its slot in the row.
    struct Test {
        path_bit: Option<usize>,
        own: Vec<(usize, bool)>,
        slot: Option<usize>,
    }
    let tests: Vec<Vec<Test>> = leaves
        .iter()
        .map(|leaf| {
            leaf.features
                .iter()
                .map(|element| Test {
                    path_bit: on_path.iter().position(|&f| f == element.feature),
                    own: element
                        .conditions
                        .iter()
                        .filter_map(|&(node, left)| {
                            let j = nodes.iter().position(|&m| m == node)?;
                            Some((on_path.len() + j, left))
                        })
                        .collect(),
                    slot: slots.iter().position(|&f| f == element.feature),
                })
                .collect()
        })
        .collect();
    let mut hot = Vec::new();
    let mut shares = Vec::new();
    let mut product = Vec::new();
    for index in 0..1usize << (on_path.len() + nodes.len()) {
        let bit = |j: usize| index >> j & 1 == 1;
        let mut line = Line([0.0; BLOCK_WIDTH]);
        for (leaf, tests) in leaves.iter().zip(&tests) {
            hot.clear();
            hot.extend(tests.iter().map(|test| {
                test.path_bit.is_none_or(bit) && test.own.iter().all(|&(j, left)| bit(j) == left)
            }));
            let Some(rule) = quadrature.get(order_for(leaf.features.len())) else {
                continue;
            };
            exact_leaf_shares(leaf, &hot, rule, &mut product, &mut shares);
            for (test, share) in tests.iter().zip(&shares) {
                if let Some(value) = test.slot.and_then(|k| line.0.get_mut(k)) {
                    *value += share;
                }
            }
        }
        lines.push(line);
    }
    block
}

/// A leaf's share per path feature (in `leaf.features` order) for the hot
/// flags `hot`, computed as the integrating kernel computes them.
fn exact_leaf_shares(
    leaf: &PathLeaf,
    hot: &[bool],
    rule: &Quadrature,
    product: &mut Vec<f64>,
    shares: &mut Vec<f64>,
) {
    product.clear();
    product.resize(rule.nodes.len(), leaf.value);
    for (element, &is_hot) in leaf.features.iter().zip(hot) {
        let z = element.z;
        for (p, &node) in product.iter_mut().zip(&rule.nodes) {
            *p *= if is_hot {
                z * (1.0 - node) + node
            } else {
                z * (1.0 - node)
            };
        }
    }
    let zero_share: f64 = product
        .iter()
        .zip(&rule.zero_scale)
        .map(|(p, s)| p * s)
        .sum();
    shares.clear();
    for (element, &is_hot) in leaf.features.iter().zip(hot) {
        let z = element.z;
        shares.push(if is_hot {
            product
                .iter()
                .zip(rule.nodes.iter().zip(&rule.weights))
                .map(|(p, (&node, w))| p * (w * (1.0 - z) / (z * (1.0 - node) + node)))
                .sum()
        } else {
            -zero_share
        });
    }
}

/// Appends a leaf's integration coefficients.
fn lower_integrated(leaf: &PathLeaf, quadrature: &[Quadrature], tables: &mut TreeTables) {
    let order = order_for(leaf.features.len());
    let Some(rule) = quadrature.get(order) else {
        return;
    };
    let first = tables.elements.len() as u32;
    for feature in &leaf.features {
        let start = tables.conditions.len() as u32;
        tables.conditions.extend_from_slice(&feature.conditions);
        let (mask, want) = hot_mask(&feature.conditions);
        let offset = tables.coefficients.len() as u32;
        let z = feature.z;
        let cold = rule.nodes.iter().map(|p| z * (1.0 - p));
        let hot: Vec<f64> = rule.nodes.iter().map(|p| z * (1.0 - p) + p).collect();
        let g1: Vec<f64> = hot
            .iter()
            .zip(&rule.weights)
            .map(|(f1, w)| w * (1.0 - z) / f1)
            .collect();
        tables.coefficients.extend_from_slice(&hot);
        tables.coefficients.extend(cold);
        tables.coefficients.extend_from_slice(&g1);
        tables.elements.push(Element {
            feature: feature.feature,
            mask,
            want,
            conditions: (start, tables.conditions.len() as u32),
            coefficients: offset,
        });
    }
    tables.leaves.push(Leaf {
        value: leaf.value,
        order: order as u32,
        elements: (first, tables.elements.len() as u32),
    });
}

/// The textbook recursion (Lundberg et al. 2020, Algorithm 2, as LightGBM's
/// `Tree::TreeSHAP` implements it): slow, kept as the oracle for tests and
/// benchmarks. Same layout as [`Explainer::contributions`].
pub fn reference_contributions(model: &Model, row: &[f64]) -> Vec<f64> {
    let mut phi = vec![0.0; model.num_features() + 1];
    for tree in &model.trees {
        phi[model.num_features()] += tree.expected_value();
        if tree.split.is_empty() {
            continue;
        }
        recurse(tree, row, &mut phi, 0, &[], 1.0, 1.0, -1);
    }
    phi
}

#[derive(Clone, Copy)]
struct PathElement {
    feature: i64,
    zero: f64,
    one: f64,
    weight: f64,
}

fn extend(path: &mut Vec<PathElement>, zero: f64, one: f64, feature: i64) {
    let depth = path.len();
    path.push(PathElement {
        feature,
        zero,
        one,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    });
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / (depth + 1) as f64;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / (depth + 1) as f64;
    }
}

fn unwind(path: &mut Vec<PathElement>, index: usize) {
    let depth = path.len() - 1;
    let (one, zero) = (path[index].one, path[index].zero);
    let mut next = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let tmp = path[i].weight;
            path[i].weight = next * (depth + 1) as f64 / ((i + 1) as f64 * one);
            next = tmp - path[i].weight * zero * (depth - i) as f64 / (depth + 1) as f64;
        } else {
            path[i].weight = path[i].weight * (depth + 1) as f64 / (zero * (depth - i) as f64);
        }
    }
    for i in index..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
    path.pop();
}

fn unwound_sum(path: &[PathElement], index: usize) -> f64 {
    let depth = path.len() - 1;
    let (one, zero) = (path[index].one, path[index].zero);
    let mut next = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let tmp = next * (depth + 1) as f64 / ((i + 1) as f64 * one);
            total += tmp;
            next = path[i].weight - tmp * zero * ((depth - i) as f64 / (depth + 1) as f64);
        } else {
            total += (path[i].weight / zero) / ((depth - i) as f64 / (depth + 1) as f64);
        }
    }
    total
}

#[allow(clippy::too_many_arguments)]
fn recurse(
    tree: &Tree,
    row: &[f64],
    phi: &mut [f64],
    node: i32,
    path: &[PathElement],
    zero: f64,
    one: f64,
    feature: i64,
) {
    let mut path_here = path.to_vec();
    extend(&mut path_here, zero, one, feature);
    if node < 0 {
        let value = tree.leaf_value[!node as usize];
        for i in 1..path_here.len() {
            let w = unwound_sum(&path_here, i);
            let e = path_here[i];
            phi[e.feature as usize] += w * (e.one - e.zero) * value;
        }
        return;
    }
    let n = node as usize;
    let split_feature = tree.split_feature[n] as i64;
    let x = row.get(split_feature as usize).copied().unwrap_or(f64::NAN);
    let (hot, cold) = if tree.split[n].goes_left(x) {
        (tree.left_child[n], tree.right_child[n])
    } else {
        (tree.right_child[n], tree.left_child[n])
    };
    let count = tree.internal_count[n];
    let hot_zero = tree.child_count(hot) / count;
    let cold_zero = tree.child_count(cold) / count;
    let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
    if let Some(k) = path_here
        .iter()
        .skip(1)
        .position(|e| e.feature == split_feature)
    {
        let k = k + 1;
        incoming_zero = path_here[k].zero;
        incoming_one = path_here[k].one;
        unwind(&mut path_here, k);
    }
    recurse(
        tree,
        row,
        phi,
        hot,
        &path_here,
        hot_zero * incoming_zero,
        incoming_one,
        split_feature,
    );
    recurse(
        tree,
        row,
        phi,
        cold,
        &path_here,
        cold_zero * incoming_zero,
        0.0,
        split_feature,
    );
}
