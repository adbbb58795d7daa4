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
//! feature with `o = 1` gets `v (1 − z) ∫ P / (z (1 − p) + p)`. Per row and tree
//! that is `O(L · d · Q)` multiply-adds over precomputed tables, no recursion,
//! no allocation, and no division by `z` (LightGBM's unwinding divides).
//!
//! Covers are training-row counts, as LightGBM's `pred_contrib` uses. The
//! reference recursion ([`reference_contributions`]) is kept as the test oracle.

use rayon::prelude::*;

use crate::GbdtError;
use crate::compiled::{FlatTree, Node, Predictor};
use crate::model::{Model, row_count};
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

/// One unique feature on a leaf's path.
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
    nodes: Vec<Node>,
    leaves: Vec<Leaf>,
    elements: Vec<Element>,
    /// (internal node, goes left).
    conditions: Vec<(u32, bool)>,
    coefficients: Vec<f64>,
}

/// Per quadrature order: `zero_scale[q] = w_q / (1 − p_q)`.
#[derive(Debug, Clone)]
struct Quadrature {
    zero_scale: Vec<f64>,
}

/// Precomputed tables for explaining one model; build once, explain many rows.
#[derive(Debug, Clone)]
pub struct Explainer {
    num_features: usize,
    base_value: f64,
    trees: Vec<TreeTables>,
    quadrature: Vec<Quadrature>,
    max_order: usize,
    max_nodes: usize,
    max_elements: usize,
    bitsets: Vec<u32>,
}

/// Scratch space for one thread.
struct Scratch {
    decisions: Vec<bool>,
    hot: Vec<bool>,
    product: Vec<f64>,
}

impl Explainer {
    /// Builds the tables. Cost O(trees · leaves · depth²); memory O(leaves · depth · Q).
    pub fn new(model: &Model) -> Explainer {
        let mut max_order = 1;
        let mut max_nodes = 0;
        let mut orders_needed = 1;
        let predictor = Predictor::new(model);
        let trees: Vec<TreeTables> = model
            .trees
            .iter()
            .zip(&predictor.trees)
            .map(|(tree, flat)| {
                max_nodes = max_nodes.max(tree.split.len());
                build_tables(tree, flat, &mut orders_needed)
            })
            .collect();
        max_order = max_order.max(orders_needed);
        let quadrature = (0..=max_order)
            .map(|order| {
                let (nodes, weights) = gauss_legendre(order);
                Quadrature {
                    zero_scale: nodes
                        .iter()
                        .zip(&weights)
                        .map(|(p, w)| w / (1.0 - p))
                        .collect(),
                }
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
        let mut explainer = Explainer {
            bitsets: predictor.bitsets,
            max_elements,
            num_features: model.num_features(),
            base_value: model.expected_value(),
            trees,
            quadrature,
            max_order,
            max_nodes,
        };
        explainer.fill_coefficients();
        explainer
    }

    /// The base value (mean training margin): contributions sum to `margin − base_value`.
    pub fn base_value(&self) -> f64 {
        self.base_value
    }

    /// Number of features.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    fn fill_coefficients(&mut self) {
        for tree in &mut self.trees {
            for leaf in &tree.leaves {
                let order = leaf.order as usize;
                let (nodes, weights) = gauss_legendre(order);
                for e in &tree.elements[leaf.elements.0 as usize..leaf.elements.1 as usize] {
                    let at = e.coefficients as usize;
                    let z = tree.coefficients[at];
                    for q in 0..order {
                        let p = nodes[q];
                        let f1 = z * (1.0 - p) + p;
                        tree.coefficients[at + q] = f1;
                        tree.coefficients[at + order + q] = z * (1.0 - p);
                        tree.coefficients[at + 2 * order + q] = weights[q] * (1.0 - z) / f1;
                    }
                }
            }
        }
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            decisions: vec![false; self.max_nodes],
            hot: vec![false; self.max_elements],
            product: vec![0.0; self.max_order.max(1)],
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
        for tree in &self.trees {
            let mut bits = 0u64;
            for (n, (decision, node)) in scratch.decisions.iter_mut().zip(&tree.nodes).enumerate() {
                let x = row.get(node.feature()).copied().unwrap_or(f64::NAN);
                *decision = node.goes_left(x, &self.bitsets);
                bits |= u64::from(*decision) << (n & 63);
            }
            let small = tree.nodes.len() <= 64;
            for leaf in &tree.leaves {
                let elements = &tree.elements[leaf.elements.0 as usize..leaf.elements.1 as usize];
                if elements.is_empty() {
                    continue;
                }
                let hot = &mut scratch.hot[..elements.len()];
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
                                all & (scratch.decisions[node as usize] == left)
                            });
                    }
                }
                // A fixed quadrature order lets the compiler unroll and vectorise.
                let zero_scale = &self.quadrature[leaf.order as usize].zero_scale;
                macro_rules! by_order {
                    ($($q:literal)+) => {
                        match leaf.order {
                            $($q => leaf_shares::<$q>(tree, leaf, elements, hot, zero_scale, phi),)+
                            _ => leaf_shares_any(tree, leaf, elements, hot, zero_scale, &mut scratch.product, phi),
                        }
                    };
                }
                by_order!(1 2 3 4 5 6 7 8);
            }
        }
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

/// Walks every root-to-leaf path, merging repeated features.
fn build_tables(tree: &Tree, flat: &FlatTree, max_order: &mut usize) -> TreeTables {
    let mut tables = TreeTables {
        nodes: flat.nodes.clone(),
        leaves: Vec::new(),
        elements: Vec::new(),
        conditions: Vec::new(),
        coefficients: Vec::new(),
    };
    if tree.split.is_empty() {
        return tables;
    }
    // (feature, z, conditions) along the current path.
    struct Step {
        feature: u32,
        z: f64,
        node: u32,
        left: bool,
    }
    fn walk(
        tree: &Tree,
        node: i32,
        path: &mut Vec<Step>,
        tables: &mut TreeTables,
        max_order: &mut usize,
    ) {
        if node < 0 {
            let mut features: Vec<u32> = path.iter().map(|s| s.feature).collect();
            features.sort_unstable();
            features.dedup();
            let order = features.len().div_ceil(2).max(1);
            *max_order = (*max_order).max(order);
            let first = tables.elements.len() as u32;
            for feature in features {
                let start = tables.conditions.len() as u32;
                let mut z = 1.0;
                for step in path.iter().filter(|s| s.feature == feature) {
                    z *= step.z;
                    tables.conditions.push((step.node, step.left));
                }
                let offset = tables.coefficients.len() as u32;
                // z is parked in the first slot until `fill_coefficients`.
                tables.coefficients.push(z);
                tables
                    .coefficients
                    .extend(std::iter::repeat_n(0.0, 3 * order - 1));
                let (mut mask, mut want) = (0u64, 0u64);
                for &(node, left) in &tables.conditions[start as usize..] {
                    if node < 64 {
                        mask |= 1 << node;
                        want |= u64::from(left) << node;
                    }
                }
                tables.elements.push(Element {
                    feature,
                    mask,
                    want,
                    conditions: (start, tables.conditions.len() as u32),
                    coefficients: offset,
                });
            }
            tables.leaves.push(Leaf {
                value: tree.leaf_value[!node as usize],
                order: order as u32,
                elements: (first, tables.elements.len() as u32),
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
            walk(tree, child, path, tables, max_order);
            path.pop();
        }
    }
    walk(tree, 0, &mut Vec::new(), &mut tables, max_order);
    tables
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
