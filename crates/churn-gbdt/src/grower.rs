//! Grows one tree leaf-wise from gradients: histograms per feature, best split
//! per leaf, stable partition of row indices, smaller-child histogram plus
//! subtraction for the larger child.
//!
//! **Determinism:** a histogram cell is summed in row order inside row blocks
//! whose size depends only on the leaf's length, the blocks are added up in
//! order, and every other sum is sequential, so the tree does not depend on the
//! number of threads.

use rayon::prelude::*;

use crate::binning::BinMapper;
use crate::model::FeatureKind;
use crate::params::GbdtParams;
use crate::prefetch::prefetch;
use crate::quantize::{Packed, Quantized, Words};
use crate::tree::{MissingType, Split, Tree};

/// Where a split search takes its row counts from.
#[derive(Debug, Clone, Copy)]
enum Counts {
    /// Every cell's `n` is its exact row count.
    Exact,
    /// The cells hold no counts (quantized gradients): a side's count is
    /// its hessian sum times the leaf's rows per unit of hessian, rounded,
    /// as LightGBM infers counts in its split search. A leaf without
    /// hessian infers no rows.
    FromHessian { rows_per_hessian: f64 },
}

impl Counts {
    fn of(self, s: &Stats) -> u32 {
        match self {
            Counts::Exact => s.n,
            // LightGBM's RoundInt: h ≥ 0, so the cast truncates to the floor.
            Counts::FromHessian { rows_per_hessian } => (s.h * rows_per_hessian + 0.5) as u32,
        }
    }
}

/// A leaf as its split search sees it.
#[derive(Debug, Clone, Copy)]
struct Leaf {
    total: Stats,
    /// The gain of leaving it unsplit.
    gain: f64,
    /// Output bounds from monotone constraints.
    bounds: (f64, f64),
    counts: Counts,
}

/// Training features, binned, laid out both by column and by row.
pub(crate) struct Binned {
    pub(crate) mappers: Vec<BinMapper>,
    pub(crate) kinds: Vec<FeatureKind>,
    /// Feature `f`'s cells are `offsets[f]..offsets[f + 1]` of a histogram.
    pub(crate) offsets: Vec<usize>,
    /// `columns[f][row]`: the bin of row `row` in feature `f`, for
    /// partitions, which read one feature of a leaf's rows.
    pub(crate) columns: Vec<Vec<u8>>,
    /// The same bins row by row, `bins[row * width + f]`, for histograms,
    /// which read every feature of a leaf's rows: one cache line per row
    /// instead of one per row and feature. (Measured, 800k rows x 40, 200
    /// trees: 14.5 s against 16.5 s for one column per feature task, and
    /// partitions reading this layout instead of columns cost 1 s more.)
    bins: Vec<u8>,
    /// Rows in each histogram cell over all rows: the root's counts.
    counts: Vec<u32>,
}

impl Binned {
    /// Takes the bins row by row (`bins[row * width + f]`, width = the
    /// number of mappers) and lays them out by column too.
    pub(crate) fn from_rows(
        mappers: Vec<BinMapper>,
        kinds: Vec<FeatureKind>,
        bins: Vec<u8>,
    ) -> Binned {
        let mut offsets = vec![0];
        for mapper in &mappers {
            offsets.push(offsets[offsets.len() - 1] + mapper.value_bins() + 1);
        }
        let width = mappers.len();
        let rows = bins.len().checked_div(width).unwrap_or(0);
        let mut columns = vec![vec![0u8; rows]; width];
        if width > 0 {
            // Blocks of rows, each written into every column's slice of it.
            let mut blocks: Vec<Vec<&mut [u8]>> = (0..rows.div_ceil(PARALLEL_CHUNK))
                .map(|_| Vec::with_capacity(width))
                .collect();
            for column in &mut columns {
                for (block, part) in blocks.iter_mut().zip(column.chunks_mut(PARALLEL_CHUNK)) {
                    block.push(part);
                }
            }
            blocks
                .into_par_iter()
                .enumerate()
                .for_each(|(b, mut parts)| {
                    let first = b * PARALLEL_CHUNK;
                    for (i, row) in bins[first * width..]
                        .chunks_exact(width)
                        .take(parts.first().map_or(0, |p| p.len()))
                        .enumerate()
                    {
                        for (part, &bin) in parts.iter_mut().zip(row) {
                            part[i] = bin;
                        }
                    }
                });
        }
        let counts: Vec<u32> = columns
            .par_iter()
            .zip(&mappers)
            .flat_map_iter(|(column, mapper)| {
                let mut cells = vec![0u32; mapper.value_bins() + 1];
                for &bin in column {
                    if let Some(cell) = cells.get_mut(bin as usize) {
                        *cell += 1;
                    }
                }
                cells
            })
            .collect();
        Binned {
            mappers,
            kinds,
            offsets,
            columns,
            bins,
            counts,
        }
    }

    /// Feature `f`'s cells of the root counts.
    pub(crate) fn counts_of(&self, f: usize) -> &[u32] {
        &self.counts[self.offsets[f]..self.offsets[f + 1]]
    }

    /// The same bins with `mappers` of the same bin counts (their
    /// missing-value flags settled after binning).
    pub(crate) fn with_mappers(self, mappers: Vec<BinMapper>) -> Binned {
        Binned { mappers, ..self }
    }

    fn width(&self) -> usize {
        self.mappers.len()
    }
}

/// All features' cells of one leaf, feature by feature (see [`Binned::offsets`]).
type Histogram = Vec<Stats>;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Stats {
    pub(crate) g: f64,
    pub(crate) h: f64,
    pub(crate) n: u32,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.g += other.g;
        self.h += other.h;
        self.n += other.n;
    }
    fn minus(&self, other: &Stats) -> Stats {
        Stats {
            g: self.g - other.g,
            h: self.h - other.h,
            n: self.n - other.n,
        }
    }
}

/// A split of binned data, with its raw-value twin for the tree.
#[derive(Debug, Clone)]
enum BinSplit {
    /// Bins `0..=last_left` go left; the missing bin goes `default_left`.
    Numeric { last_left: u8, default_left: bool },
    /// Bins marked `true` go left (never the missing bin).
    Categorical { left: Vec<bool> },
}

#[derive(Debug, Clone)]
struct Candidate {
    gain: f64,
    feature: usize,
    split: BinSplit,
    left: Stats,
    right: Stats,
    left_output: f64,
    right_output: f64,
}

struct LeafState {
    start: usize,
    len: usize,
    depth: usize,
    stats: Stats,
    /// Output bounds from monotone constraints.
    bounds: (f64, f64),
    /// Taken (left empty) when the leaf is split.
    histogram: Histogram,
    best: Option<Candidate>,
    /// (internal node, went left) of the parent split, `None` for the root.
    parent: Option<(usize, bool)>,
}

/// What growing one tree produced.
pub(crate) struct Grown {
    pub(crate) tree: Tree,
    /// Bin-level test of each internal node (for out-of-bag score updates).
    node_splits: BinTests,
    /// Row indices grouped by leaf: leaf `l` owns `rows[ranges[l].0..ranges[l].1]`.
    pub(crate) rows: Vec<u32>,
    pub(crate) ranges: Vec<(usize, usize)>,
}

fn threshold_l1(g: f64, l1: f64) -> f64 {
    g.signum() * (g.abs() - l1).max(0.0)
}

fn leaf_output(s: &Stats, p: &GbdtParams, l2: f64, bounds: (f64, f64)) -> f64 {
    (-threshold_l1(s.g, p.lambda_l1) / (s.h + l2)).clamp(bounds.0, bounds.1)
}

/// Gain of a leaf holding `s` with output `w`: −(2 G' w + (H + λ2) w²).
fn leaf_gain(s: &Stats, p: &GbdtParams, l2: f64, w: f64) -> f64 {
    -(2.0 * threshold_l1(s.g, p.lambda_l1) * w + (s.h + l2) * w * w)
}

/// Rows per task where a leaf's rows are partitioned in parallel (and where
/// the row-major copy of the bins is laid out).
const PARALLEL_CHUNK: usize = 32 * 1024;

/// Features per pass of a dense block over exact cells (24 bytes, 6 KiB per
/// feature): measured best of 5, 7, 10, 20 and 40 on 800k rows × 40 (10: 23
/// ms against 30 for all 40 in one pass over every row, 12.7 against 16 over
/// half the rows; no better at a quarter, worse below).
const EXACT_TILE_FEATURES: usize = 10;

/// How many rows ahead a loop over a leaf's rows asks for their data.
const PREFETCH_AHEAD: usize = 64;

/// Rows per block of a row-by-row histogram, most blocks per leaf, and most
/// bytes of block histograms alive at once (each holds 256 cells per feature).
const ROW_BLOCK: usize = 8 * 1024;
const MAX_ROW_BLOCKS: usize = 32;
const MAX_BLOCK_BYTES: usize = 64 << 20;

/// The gradients a tree is grown from.
enum Gradients<'a> {
    /// Every row's (gradient, hessian), side by side: one load per row and
    /// one two-lane add per cell.
    Exact(&'a [[f64; 2]]),
    /// Packed integers (see `quantize`): one 32-bit add per cell (64-bit
    /// above 8 levels).
    Quantized(&'a Quantized),
}

/// A leaf's rows summed block by block, before the blocks are added up.
enum Parts {
    Exact {
        blocks: Vec<Vec<[Stats; 256]>>,
        /// Every row: the counts are the root's.
        all_rows: bool,
    },
    Narrow(PackedParts<u32>),
    Wide(PackedParts<u64>),
}

/// A leaf's rows summed block by block into packed cells (see `quantize`).
struct PackedParts<W> {
    blocks: Vec<Vec<[W; 256]>>,
    /// The leaf is no larger than a block: its blocks' words sum as they are.
    sum_fits: bool,
    g_scale: f64,
    h_scale: f64,
}

impl<W: Packed> PackedParts<W> {
    /// Feature `f`'s cells, summed exactly as integers over the blocks,
    /// then scaled back to gradient units. Their counts stay 0: the split
    /// search infers them.
    fn assemble(&self, f: usize, cells: &mut [Stats]) {
        for (bin, cell) in cells.iter_mut().enumerate() {
            let (g, h) = if self.sum_fits {
                self.blocks
                    .iter()
                    .fold(W::default(), |sum, part| sum.add(part[f][bin]))
                    .unpack()
            } else {
                self.blocks.iter().fold((0, 0), |(g, h), part| {
                    let (pg, ph) = part[f][bin].unpack();
                    (g + pg, h + ph)
                })
            };
            *cell = Stats {
                g: g as f64 * self.g_scale,
                h: h as f64 * self.h_scale,
                n: 0,
            };
        }
    }
}

struct Context<'a> {
    data: &'a Binned,
    params: &'a GbdtParams,
    allowed: &'a [bool],
    gradients: Gradients<'a>,
    /// The allowed features when `feature_fraction` left out most: histograms
    /// then skip the others' cells. When it left out fewer than half, every
    /// feature is summed (the others' cells are never read): a loop over
    /// a whole row costs less than one that picks features out of it.
    sampled: Option<Vec<usize>>,
}

impl Context<'_> {
    /// A leaf's histogram, row by row: fixed blocks of the leaf's rows (their
    /// size depends only on the leaf's length) each fill a local histogram of
    /// 256 cells per feature, so a u8 bin needs no bounds check, and the
    /// blocks are added up in order, so no sum depends on the thread count.
    fn histogram(&self, rows: &[u32]) -> Histogram {
        let parts = self.fill(rows);
        self.assemble(|f, cells| self.assemble_feature(&parts, f, cells))
    }

    /// The blocks of a leaf's rows, each summed into its local cells.
    fn fill(&self, rows: &[u32]) -> Parts {
        match &self.gradients {
            Gradients::Exact(gh) => self.exact_parts(rows, gh),
            Gradients::Quantized(q) => self.quantized_parts(rows, q),
        }
    }

    /// Feature `f`'s cells of a leaf from its blocks, added up in order.
    fn assemble_feature(&self, parts: &Parts, f: usize, cells: &mut [Stats]) {
        match parts {
            Parts::Exact { blocks, all_rows } => {
                for part in blocks {
                    for (cell, add) in cells.iter_mut().zip(&part[f]) {
                        cell.add(add);
                    }
                }
                if *all_rows {
                    let counts = &self.data.counts[self.data.offsets[f]..];
                    for (cell, &n) in cells.iter_mut().zip(counts) {
                        cell.n = n;
                    }
                }
            }
            Parts::Narrow(parts) => parts.assemble(f, cells),
            Parts::Wide(parts) => parts.assemble(f, cells),
        }
    }

    /// The rows of each block of a leaf of `rows` rows: fixed blocks (their
    /// size depends only on the leaf's length and `max_rows`), fewer for
    /// wide tables so their local histograms of `cell_bytes` cells stay small.
    fn block_rows(&self, rows: usize, cell_bytes: usize, max_rows: usize) -> usize {
        let block_bytes = self.data.width() * 256 * cell_bytes;
        let max_blocks = (MAX_BLOCK_BYTES / block_bytes.max(1)).clamp(1, MAX_ROW_BLOCKS);
        let blocks = rows
            .div_ceil(ROW_BLOCK)
            .clamp(1, max_blocks)
            .max(rows.div_ceil(max_rows));
        rows.div_ceil(blocks).max(1)
    }

    /// A new histogram and its cells split by feature.
    fn by_feature<'h>(histogram: &'h mut [Stats], offsets: &[usize]) -> Vec<&'h mut [Stats]> {
        let mut slices = Vec::with_capacity(offsets.len() - 1);
        let mut rest = histogram;
        for f in 0..offsets.len() - 1 {
            let (mine, tail) = rest.split_at_mut(offsets[f + 1] - offsets[f]);
            slices.push(mine);
            rest = tail;
        }
        slices
    }

    fn exact_parts(&self, rows: &[u32], gh: &[[f64; 2]]) -> Parts {
        let block = self.block_rows(rows.len(), std::mem::size_of::<Stats>(), usize::MAX);
        // Every row, in order (the root of an unbagged tree): read in
        // sequence, and the counts are known already.
        let all_rows = rows.len() == gh.len();
        let blocks: Vec<Vec<[Stats; 256]>> = rows
            .par_chunks(block)
            .map(|block| {
                if all_rows {
                    self.fill_block::<true>(block, gh)
                } else {
                    self.fill_block::<false>(block, gh)
                }
            })
            .collect();
        Parts::Exact { blocks, all_rows }
    }

    /// A new histogram whose allowed features' cells `fill(feature, cells)`
    /// writes, feature by feature in parallel.
    fn assemble(&self, fill: impl Fn(usize, &mut [Stats]) + Sync) -> Histogram {
        let mut histogram = vec![Stats::default(); self.data.offsets[self.data.width()]];
        Self::by_feature(&mut histogram, &self.data.offsets)
            .into_par_iter()
            .enumerate()
            .for_each(|(f, cells)| {
                if self.allowed[f] {
                    fill(f, cells);
                }
            });
        histogram
    }

    /// [`Self::exact_parts`] from packed integers: blocks of at most
    /// `max_block_rows` rows, summed exactly as integers across blocks, then
    /// scaled back to gradient units.
    fn quantized_parts(&self, rows: &[u32], q: &Quantized) -> Parts {
        match &q.words {
            Words::Narrow(words) => Parts::Narrow(self.packed_parts(rows, words, q)),
            Words::Wide(words) => Parts::Wide(self.packed_parts(rows, words, q)),
        }
    }

    fn packed_parts<W: Packed>(&self, rows: &[u32], words: &[W], q: &Quantized) -> PackedParts<W> {
        let block = self.block_rows(rows.len(), std::mem::size_of::<W>(), q.max_block_rows);
        let all_rows = rows.len() == words.len();
        let blocks: Vec<Vec<[W; 256]>> = rows
            .par_chunks(block)
            .map(|block| {
                if all_rows {
                    self.fill_packed_block::<W, true>(block, words)
                } else {
                    self.fill_packed_block::<W, false>(block, words)
                }
            })
            .collect();
        PackedParts {
            blocks,
            sum_fits: rows.len() <= q.max_block_rows,
            g_scale: q.g_scale,
            h_scale: q.h_scale,
        }
    }

    /// One block of a leaf's rows summed into 256 packed cells per feature.
    fn fill_packed_block<W: Packed, const ALL_ROWS: bool>(
        &self,
        block: &[u32],
        packed: &[W],
    ) -> Vec<[W; 256]> {
        let width = self.data.width();
        let bins = &self.data.bins;
        let mut local = vec![[W::default(); 256]; width];
        let ahead = if ALL_ROWS {
            &[]
        } else {
            block.get(PREFETCH_AHEAD..).unwrap_or_default()
        };
        if self.sampled.is_none() {
            // Two rows at a time: one pass over the features' cells for both.
            let pairs = block.chunks_exact(2);
            let odd = pairs.remainder();
            for (k, pair) in pairs.enumerate() {
                for j in 0..2 {
                    if let Some(&next) = ahead.get(2 * k + j) {
                        prefetch(bins, next as usize * width);
                        prefetch(packed, next as usize);
                    }
                }
                let (a, b) = (pair[0] as usize, pair[1] as usize);
                let (wa, wb) = (packed[a], packed[b]);
                let row_a = &bins[a * width..(a + 1) * width];
                let row_b = &bins[b * width..(b + 1) * width];
                for ((cells, &bin_a), &bin_b) in local.iter_mut().zip(row_a).zip(row_b) {
                    cells[bin_a as usize] = cells[bin_a as usize].add(wa);
                    cells[bin_b as usize] = cells[bin_b as usize].add(wb);
                }
            }
            for &r in odd {
                let r = r as usize;
                let row = &bins[r * width..(r + 1) * width];
                for (cells, &bin) in local.iter_mut().zip(row) {
                    cells[bin as usize] = cells[bin as usize].add(packed[r]);
                }
            }
            return local;
        }
        for (i, &r) in block.iter().enumerate() {
            if let Some(&next) = ahead.get(i) {
                prefetch(bins, next as usize * width);
                prefetch(packed, next as usize);
            }
            let r = r as usize;
            let word = packed[r];
            let row = &bins[r * width..(r + 1) * width];
            match &self.sampled {
                None => {
                    for (cells, &bin) in local.iter_mut().zip(row) {
                        let cell = &mut cells[bin as usize];
                        *cell = cell.add(word);
                    }
                }
                Some(features) => {
                    for &f in features {
                        let cell = &mut local[f][row[f] as usize];
                        *cell = cell.add(word);
                    }
                }
            }
        }
        local
    }

    /// One block of a leaf's rows summed into 256 cells per feature (a u8 bin
    /// needs no bounds check). `ALL_ROWS`: the block is a run of consecutive
    /// rows, so it is read in sequence and rows are not counted.
    fn fill_block<const ALL_ROWS: bool>(
        &self,
        block: &[u32],
        gh: &[[f64; 2]],
    ) -> Vec<[Stats; 256]> {
        let width = self.data.width();
        let bins = &self.data.bins;
        let mut local = vec![[Stats::default(); 256]; width];
        // A leaf's rows are ascending but sparse: each row's data is its own
        // cache miss unless asked for ahead.
        let ahead = if ALL_ROWS {
            &[]
        } else {
            block.get(PREFETCH_AHEAD..).unwrap_or_default()
        };
        // A dense block (every row, or a third or more of the rows it spans)
        // passes over the features a tile at a time, so the tile's cells stay
        // in L1 while its rows go by; a feature's 256 cells are 6 KiB, all 40
        // of a table's would cycle through L2 for every row. A cell still
        // adds its rows in row order: the same sums.
        let dense = ALL_ROWS
            || block
                .first()
                .zip(block.last())
                .is_some_and(|(&a, &b)| 3 * block.len() as u64 > u64::from(b - a));
        let tile = match self.sampled {
            None if dense => EXACT_TILE_FEATURES,
            _ => width.max(1),
        };
        for first in (0..width).step_by(tile) {
            let end = (first + tile).min(width);
            let cells = &mut local[first..end];
            for (i, &r) in block.iter().enumerate() {
                if first == 0
                    && let Some(&next) = ahead.get(i)
                {
                    prefetch(bins, next as usize * width);
                    prefetch(gh, next as usize);
                }
                let r = r as usize;
                let [g, h] = gh[r];
                let add = |cells: &mut [Stats; 256], bin: u8| {
                    let cell = &mut cells[bin as usize];
                    cell.g += g;
                    cell.h += h;
                    if !ALL_ROWS {
                        cell.n += 1;
                    }
                };
                let row = &bins[r * width..(r + 1) * width];
                match &self.sampled {
                    None => {
                        for (cells, &bin) in cells.iter_mut().zip(&row[first..end]) {
                            add(cells, bin);
                        }
                    }
                    // One pass over every feature (the tile is the width).
                    Some(features) => {
                        for &f in features {
                            add(&mut cells[f], row[f]);
                        }
                    }
                }
            }
        }
        local
    }

    fn valid_side(&self, s: &Stats, counts: Counts) -> bool {
        counts.of(s) as usize >= self.params.min_data_in_leaf
            && s.h >= self.params.min_sum_hessian_in_leaf
    }

    /// The leaf holding `total` within `bounds`, for its split search: its
    /// histogram's counts are exact, unless gradients are quantized.
    fn leaf(&self, total: Stats, bounds: (f64, f64)) -> Leaf {
        let counts = match self.gradients {
            Gradients::Exact(_) => Counts::Exact,
            Gradients::Quantized(_) => Counts::FromHessian {
                rows_per_hessian: if total.h > 0.0 {
                    f64::from(total.n) / total.h
                } else {
                    0.0
                },
            },
        };
        Leaf {
            total,
            gain: self.gain_unsplit(&total, bounds),
            bounds,
            counts,
        }
    }

    /// Best split of a leaf over the allowed features (ties: smaller feature, then first threshold).
    fn best_split(&self, histogram: &[Stats], leaf: &Leaf) -> Option<Candidate> {
        let candidates: Vec<Option<Candidate>> = (0..self.allowed.len())
            .into_par_iter()
            .map(|f| {
                let cells = &histogram[self.data.offsets[f]..self.data.offsets[f + 1]];
                self.feature_split(f, cells, leaf)
            })
            .collect();
        self.best_of(candidates)
    }

    /// A copy of a leaf's `histogram` with the exact count of its `rows`
    /// in every allowed feature's cells: one pass over each column.
    fn with_exact_counts(&self, histogram: &[Stats], rows: &[u32]) -> Histogram {
        let mut exact = histogram.to_vec();
        Self::by_feature(&mut exact, &self.data.offsets)
            .into_par_iter()
            .enumerate()
            .for_each(|(f, cells)| {
                if !self.allowed[f] {
                    return;
                }
                for cell in cells.iter_mut() {
                    cell.n = 0;
                }
                let column = &self.data.columns[f];
                for &r in rows {
                    cells[usize::from(column[r as usize])].n += 1;
                }
            });
        exact
    }

    /// Both children's histograms (the smaller one's added up from its
    /// blocks, the larger one's the parent's minus it) and each child's best
    /// split, in one parallel pass
    /// over the features: one fork and join per split instead of four.
    fn children(
        &self,
        parent: Histogram,
        small: (&Parts, &Leaf),
        large: &Leaf,
    ) -> (Histogram, Histogram, Option<Candidate>, Option<Candidate>) {
        let (small_parts, small_leaf) = small;
        let offsets = &self.data.offsets;
        let mut small_histogram = vec![Stats::default(); offsets[self.data.width()]];
        let mut large_histogram = parent;
        let candidates: Vec<(Option<Candidate>, Option<Candidate>)> =
            Self::by_feature(&mut small_histogram, offsets)
                .into_par_iter()
                .zip(Self::by_feature(&mut large_histogram, offsets))
                .enumerate()
                .map(|(f, (mine, cells))| {
                    if self.allowed[f] {
                        self.assemble_feature(small_parts, f, mine);
                    }
                    for (cell, s) in cells.iter_mut().zip(mine.iter()) {
                        *cell = cell.minus(s);
                    }
                    (
                        self.feature_split(f, mine, small_leaf),
                        self.feature_split(f, cells, large),
                    )
                })
                .collect();
        let (small_best, large_best): (Vec<_>, Vec<_>) = candidates.into_iter().unzip();
        (
            small_histogram,
            large_histogram,
            self.best_of(small_best),
            self.best_of(large_best),
        )
    }

    /// The gain of leaving a leaf of `total` unsplit.
    fn gain_unsplit(&self, total: &Stats, bounds: (f64, f64)) -> f64 {
        let p = self.params;
        leaf_gain(
            total,
            p,
            p.lambda_l2,
            leaf_output(total, p, p.lambda_l2, bounds),
        )
    }

    /// Feature `f`'s best split of a leaf whose cells of `f` are `cells`.
    fn feature_split(&self, f: usize, cells: &[Stats], leaf: &Leaf) -> Option<Candidate> {
        if !self.allowed[f] {
            return None;
        }
        match self.data.kinds[f] {
            FeatureKind::Numeric => self.numeric_split(f, cells, leaf),
            FeatureKind::Categorical => self.categorical_split(f, cells, leaf),
        }
    }

    /// The first of the largest gains in feature order, if it is worth a split.
    fn best_of(&self, candidates: Vec<Option<Candidate>>) -> Option<Candidate> {
        let mut best: Option<Candidate> = None;
        for candidate in candidates.into_iter().flatten() {
            if best.as_ref().is_none_or(|b| candidate.gain > b.gain) {
                best = Some(candidate);
            }
        }
        best.filter(|b| b.gain > self.params.min_gain_to_split && b.gain.is_finite())
    }

    fn evaluate(
        &self,
        feature: usize,
        left: Stats,
        right: Stats,
        leaf: &Leaf,
        l2: f64,
    ) -> Option<(f64, f64, f64)> {
        if !self.valid_side(&left, leaf.counts) || !self.valid_side(&right, leaf.counts) {
            return None;
        }
        let (parent_gain, bounds) = (leaf.gain, leaf.bounds);
        let p = self.params;
        let wl = leaf_output(&left, p, l2, bounds);
        let wr = leaf_output(&right, p, l2, bounds);
        match p.monotone_constraints.get(feature).copied().unwrap_or(0) {
            1 if wl > wr => return None,
            -1 if wl < wr => return None,
            _ => {}
        }
        let gain = leaf_gain(&left, p, l2, wl) + leaf_gain(&right, p, l2, wr) - parent_gain;
        Some((gain, wl, wr))
    }

    /// No L1 term, no output bounds and no monotone constraint on `f`: the
    /// case [`Self::evaluate_plain`] computes with fewer operations.
    fn is_plain(&self, f: usize, bounds: (f64, f64)) -> bool {
        let p = self.params;
        p.lambda_l1 == 0.0
            && bounds == (f64::NEG_INFINITY, f64::INFINITY)
            && p.monotone_constraints.get(f).copied().unwrap_or(0) == 0
    }

    /// [`Self::evaluate`] where [`Self::is_plain`] holds, to the same bits:
    /// with λ1 = 0 the thresholded gradient is the gradient itself (signs of
    /// zero and NaN included), and clamping to (−∞, ∞) changes nothing.
    fn evaluate_plain(&self, left: Stats, right: Stats, leaf: &Leaf) -> Option<(f64, f64, f64)> {
        if !self.valid_side(&left, leaf.counts) || !self.valid_side(&right, leaf.counts) {
            return None;
        }
        let l2 = self.params.lambda_l2;
        let (hl, hr) = (left.h + l2, right.h + l2);
        let wl = -left.g / hl;
        let wr = -right.g / hr;
        let gain =
            -(2.0 * left.g * wl + hl * wl * wl) + -(2.0 * right.g * wr + hr * wr * wr) - leaf.gain;
        Some((gain, wl, wr))
    }

    fn numeric_split(&self, f: usize, cells: &[Stats], leaf: &Leaf) -> Option<Candidate> {
        let bins = cells.len() - 1;
        let missing = cells[bins];
        let total = &leaf.total;
        let directions: &[bool] = if leaf.counts.of(&missing) > 0 {
            &[false, true]
        } else {
            &[false]
        };
        let plain = self.is_plain(f, leaf.bounds);
        // The best so far as plain values: the candidate is built once, at the end.
        let mut best: Option<(f64, usize, bool, Stats, Stats, f64, f64)> = None;
        for &default_left in directions {
            let mut left = if default_left {
                missing
            } else {
                Stats::default()
            };
            for (t, cell) in cells[..bins.saturating_sub(1)].iter().enumerate() {
                left.add(cell);
                let right = total.minus(&left);
                let evaluated = if plain {
                    self.evaluate_plain(left, right, leaf)
                } else {
                    self.evaluate(f, left, right, leaf, self.params.lambda_l2)
                };
                if let Some((gain, wl, wr)) = evaluated
                    && best.is_none_or(|b| gain > b.0)
                {
                    best = Some((gain, t, default_left, left, right, wl, wr));
                }
            }
        }
        best.map(|(gain, t, default_left, left, right, wl, wr)| Candidate {
            gain,
            feature: f,
            split: BinSplit::Numeric {
                last_left: t as u8,
                default_left,
            },
            left,
            right,
            left_output: wl,
            right_output: wr,
        })
    }

    fn categorical_split(&self, f: usize, cells: &[Stats], leaf: &Leaf) -> Option<Candidate> {
        let p = self.params;
        let total = &leaf.total;
        let count = |b: usize| leaf.counts.of(&cells[b]);
        let bins = cells.len() - 1;
        let used: Vec<usize> = (0..bins).filter(|&b| count(b) > 0).collect();
        let mut best: Option<Candidate> = None;
        let consider = |set: &[usize], l2: f64, best: &mut Option<Candidate>| {
            let mut left = Stats::default();
            for &b in set {
                left.add(&cells[b]);
            }
            let right = total.minus(&left);
            if let Some((gain, wl, wr)) = self.evaluate(f, left, right, leaf, l2)
                && best.as_ref().is_none_or(|b| gain > b.gain)
            {
                let mut mask = vec![false; bins + 1];
                for &b in set {
                    mask[b] = true;
                }
                *best = Some(Candidate {
                    gain,
                    feature: f,
                    split: BinSplit::Categorical { left: mask },
                    left,
                    right,
                    left_output: wl,
                    right_output: wr,
                });
            }
        };
        if used.len() <= p.max_cat_to_onehot {
            for &b in &used {
                consider(&[b], p.lambda_l2, &mut best);
            }
            return best;
        }
        // Many categories (LightGBM's rule): keep categories with at least
        // `cat_smooth` rows, order them by smoothed gradient ratio, and scan
        // prefixes from both ends; a threshold is tried only once another
        // `min_data_per_group` rows joined the left, and the right keeps as many.
        let mut order: Vec<usize> = used
            .into_iter()
            .filter(|&b| f64::from(count(b)) >= p.cat_smooth)
            .collect();
        order.sort_by(|&a, &b| {
            let ra = cells[a].g / (cells[a].h + p.cat_smooth);
            let rb = cells[b].g / (cells[b].h + p.cat_smooth);
            ra.total_cmp(&rb).then(a.cmp(&b))
        });
        let limit = p.max_cat_threshold.min(order.len().div_ceil(2));
        let l2 = p.lambda_l2 + p.cat_l2;
        for from_end in [false, true] {
            let mut set: Vec<usize> = Vec::new();
            let (mut left_rows, mut group_rows) = (0u32, 0u32);
            for k in 0..limit {
                let b = if from_end {
                    order[order.len() - 1 - k]
                } else {
                    order[k]
                };
                set.push(b);
                left_rows += count(b);
                group_rows += count(b);
                // Inferred counts are rounded cell by cell: their sum may pass the total.
                let right_rows = leaf.counts.of(total).saturating_sub(left_rows);
                if (right_rows as usize) < p.min_data_per_group {
                    break;
                }
                if (group_rows as usize) < p.min_data_per_group {
                    continue;
                }
                group_rows = 0;
                consider(&set, l2, &mut best);
            }
        }
        best
    }
}

/// Stable partition of a leaf's rows: the rows that go left first, in
/// order, then the others; returns how many went left. Chunks of
/// [`PARALLEL_CHUNK`] rows are split in parallel, each into its own slot of
/// `out`, then copied back in parallel: every chunk's left rows end to end,
/// then every chunk's right rows, the same order as one pass would give.
fn partition(
    rows: &mut [u32],
    out: &mut Vec<u32>,
    column: &[u8],
    left_of: impl Fn(u8) -> bool + Sync,
) -> usize {
    // Grown, never cleared: every slot read below was written first, and
    // zeroing a leaf's worth of slots per split showed in the profile.
    if out.len() < rows.len() {
        out.resize(rows.len(), 0);
    }
    let out = &mut out[..rows.len()];
    if rows.len() <= PARALLEL_CHUNK {
        let left = split_chunk(rows, out, column, &left_of);
        let (to_left, to_right) = rows.split_at_mut(left);
        copy_back(out, to_left, to_right);
        return left;
    }
    let lefts: Vec<usize> = out
        .par_chunks_mut(PARALLEL_CHUNK)
        .zip(rows.par_chunks(PARALLEL_CHUNK))
        .map(|(dst, src)| split_chunk(src, dst, column, &left_of))
        .collect();
    let left_total = lefts.iter().sum();
    let (mut left_rest, mut right_rest) = rows.split_at_mut(left_total);
    let mut copies = Vec::with_capacity(lefts.len());
    for (chunk, &left) in out.chunks(PARALLEL_CHUNK).zip(&lefts) {
        let (to_left, rest) = std::mem::take(&mut left_rest).split_at_mut(left);
        left_rest = rest;
        let (to_right, rest) = std::mem::take(&mut right_rest).split_at_mut(chunk.len() - left);
        right_rest = rest;
        copies.push((chunk, to_left, to_right));
    }
    copies
        .into_par_iter()
        .for_each(|(chunk, to_left, to_right)| copy_back(chunk, to_left, to_right));
    left_total
}

/// Splits `src` into `dst` (as long): the rows that go left from the front,
/// in order, the others from the back (so in reverse); returns how many went
/// left. Branch-free: each row is written to both ends and one cursor moves
/// (the direction is data-dependent and would mispredict half the time).
fn split_chunk(src: &[u32], dst: &mut [u32], column: &[u8], left_of: impl Fn(u8) -> bool) -> usize {
    let (mut front, mut back) = (0, dst.len());
    for (i, &r) in src.iter().enumerate() {
        if let Some(&next) = src.get(i + PREFETCH_AHEAD) {
            prefetch(column, next as usize);
        }
        let left = usize::from(left_of(column[r as usize]));
        // front < back here: front + (len − back) = i rows are placed.
        dst[front] = r;
        dst[back - 1] = r;
        front += left;
        back -= 1 - left;
    }
    front
}

/// `split` (as [`split_chunk`] left it) out to its places: its left rows
/// into `to_left`, its right rows into `to_right` in their original order
/// (the two lengths add up to the split's).
fn copy_back(split: &[u32], to_left: &mut [u32], to_right: &mut [u32]) {
    let (left, right) = split.split_at(to_left.len());
    to_left.copy_from_slice(left);
    for (to, &r) in to_right.iter_mut().zip(right.iter().rev()) {
        *to = r;
    }
}

fn goes_left(split: &BinSplit, bin: u8, missing_bin: u8) -> bool {
    match split {
        BinSplit::Numeric {
            last_left,
            default_left,
        } => {
            if bin == missing_bin {
                *default_left
            } else {
                bin <= *last_left
            }
        }
        // A bin past the feature's last (only asked when tabulating all 256)
        // goes right, as the missing bin does.
        BinSplit::Categorical { left } => left.get(usize::from(bin)).copied().unwrap_or(false),
    }
}

/// Per-row buffers one tree's growth needs, kept from tree to tree: a fresh
/// allocation of these megabytes for each tree is fresh pages, each faulted
/// in and zeroed by the kernel, under an allocator that returns freed memory
/// to the system (mimalloc does; glibc keeps blocks this size).
#[derive(Default)]
pub(crate) struct TreeBuffers {
    /// Every row's (gradient, hessian), for exact histograms.
    gh: Vec<[f64; 2]>,
    /// Where [`partition`] splits a leaf's rows before copying them back.
    scratch: Vec<u32>,
}

/// Grows one tree on the rows `bag` (ascending). Leaf outputs are multiplied
/// by `shrinkage`. With `quantized` gradients, histograms and splits use them
/// and the leaf values are renewed from the exact `g` and `h` of each leaf's
/// rows.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grow(
    data: &Binned,
    params: &GbdtParams,
    allowed: &[bool],
    g: &[f64],
    h: &[f64],
    quantized: Option<&Quantized>,
    bag: Vec<u32>,
    shrinkage: f64,
    buffers: &mut TreeBuffers,
) -> Grown {
    let TreeBuffers { gh, scratch } = buffers;
    let gradients = match quantized {
        Some(q) => Gradients::Quantized(q),
        None => {
            gh.resize(g.len(), [0.0; 2]);
            gh.par_chunks_mut(PARALLEL_CHUNK)
                .zip(
                    g.par_chunks(PARALLEL_CHUNK)
                        .zip(h.par_chunks(PARALLEL_CHUNK)),
                )
                .for_each(|(gh, (g, h))| {
                    for (pair, (&g, &h)) in gh.iter_mut().zip(g.iter().zip(h)) {
                        *pair = [g, h];
                    }
                });
            Gradients::Exact(gh)
        }
    };
    let ctx = Context {
        data,
        params,
        allowed,
        gradients,
        sampled: (2 * allowed.iter().filter(|&&a| a).count() < allowed.len())
            .then(|| (0..allowed.len()).filter(|&f| allowed[f]).collect()),
    };
    let mut rows = bag;
    let root = match quantized {
        None => exact_stats(&rows, g, h),
        Some(q) => {
            let (g, h) = q.sums(&rows);
            Stats {
                g,
                h,
                n: rows.len() as u32,
            }
        }
    };
    let unbounded = (f64::NEG_INFINITY, f64::INFINITY);
    let histogram = ctx.histogram(&rows);
    let best = ctx.best_split(&histogram, &ctx.leaf(root, unbounded));
    let mut leaves = vec![LeafState {
        start: 0,
        len: rows.len(),
        depth: 0,
        stats: root,
        bounds: unbounded,
        histogram,
        best,
        parent: None,
    }];
    let mut tree = Tree::constant(0.0, 0.0);
    tree.leaf_value.clear();
    tree.leaf_count.clear();
    let mut node_splits = BinTests(Vec::new());

    while leaves.len() < params.num_leaves {
        // The leaf with the largest gain (ties: the lower leaf index).
        let mut chosen: Option<usize> = None;
        for (i, leaf) in leaves.iter().enumerate() {
            if let Some(c) = &leaf.best
                && chosen.is_none_or(|j| leaves[j].best.as_ref().is_none_or(|b| c.gain > b.gain))
            {
                chosen = Some(i);
            }
        }
        let Some(index) = chosen else { break };
        let Some(mut candidate) = leaves[index].best.take() else {
            break;
        };
        let feature = candidate.feature;
        let missing_bin = data.mappers[feature].value_bins() as u8;

        // Stable partition of the leaf's rows.
        let (start, len) = (leaves[index].start, leaves[index].len);
        let column = &data.columns[feature];
        let segment = &mut rows[start..start + len];
        // Where each of the 256 bins goes: one table load per row.
        let goes: [bool; 256] =
            std::array::from_fn(|bin| goes_left(&candidate.split, bin as u8, missing_bin));
        let left_len = partition(segment, scratch, column, |bin| goes[usize::from(bin)]);
        if quantized.is_some() {
            // The search inferred its counts; the partition counted them.
            let right_len = len - left_len;
            if left_len.min(right_len) < params.min_data_in_leaf {
                // Too few rows on a side: the leaf's rows back in order
                // (they were ascending), and its split searched again with
                // its exact counts.
                segment.sort_unstable();
                let leaf = &leaves[index];
                let exact = ctx.with_exact_counts(&leaf.histogram, segment);
                let search = Leaf {
                    counts: Counts::Exact,
                    ..ctx.leaf(leaf.stats, leaf.bounds)
                };
                leaves[index].best = ctx.best_split(&exact, &search);
                continue;
            }
            candidate.left.n = left_len as u32;
            candidate.right.n = right_len as u32;
        }

        // The new internal node, numbered as LightGBM does.
        let node = tree.split.len();
        let new_leaf = leaves.len();
        if let Some((parent, went_left)) = leaves[index].parent {
            if went_left {
                tree.left_child[parent] = node as i32;
            } else {
                tree.right_child[parent] = node as i32;
            }
        }
        tree.split_feature.push(feature as u32);
        tree.split
            .push(raw_split(&data.mappers[feature], &candidate.split));
        tree.split_gain.push(candidate.gain);
        tree.left_child.push(!(index as i32));
        tree.right_child.push(!(new_leaf as i32));
        tree.internal_count.push(f64::from(leaves[index].stats.n));
        node_splits
            .0
            .push((feature, candidate.split.clone(), missing_bin));

        // Children bounds: a monotone split fences both sides at the midpoint.
        let bounds = leaves[index].bounds;
        let (left_bounds, right_bounds) = match params
            .monotone_constraints
            .get(feature)
            .copied()
            .unwrap_or(0)
        {
            0 => (bounds, bounds),
            c => {
                let mid = (candidate.left_output + candidate.right_output) / 2.0;
                if c > 0 {
                    ((bounds.0, mid.min(bounds.1)), (mid.max(bounds.0), bounds.1))
                } else {
                    ((mid.max(bounds.0), bounds.1), (bounds.0, mid.min(bounds.1)))
                }
            }
        };

        // Histograms: build the smaller child, subtract for the larger, and
        // find both children's best splits.
        let parent_hist = std::mem::take(&mut leaves[index].histogram);
        let left_rows = &rows[start..start + left_len];
        let right_rows = &rows[start + left_len..start + len];
        let depth = leaves[index].depth + 1;
        let can_split = params.max_depth.is_none_or(|d| depth < d);
        let left_is_small = left_rows.len() <= right_rows.len();
        let small_rows = if left_is_small { left_rows } else { right_rows };
        let left_leaf = ctx.leaf(candidate.left, left_bounds);
        let right_leaf = ctx.leaf(candidate.right, right_bounds);
        let (small_leaf, large_leaf) = if left_is_small {
            (&left_leaf, &right_leaf)
        } else {
            (&right_leaf, &left_leaf)
        };
        // Children that will never be split (this split fills the tree,
        // they are at the depth limit, or each holds too few rows to give
        // both sides of a split `min_data_in_leaf`) need no histograms:
        // LightGBM builds none for them either.
        let tree_full = leaves.len() + 1 >= params.num_leaves;
        let too_few = |s: &Stats| (s.n as usize) < 2 * params.min_data_in_leaf;
        let (small, large, small_best, large_best) =
            if tree_full || !can_split || (too_few(&candidate.left) && too_few(&candidate.right)) {
                (Histogram::new(), Histogram::new(), None, None)
            } else {
                let small_parts = ctx.fill(small_rows);
                ctx.children(parent_hist, (&small_parts, small_leaf), large_leaf)
            };
        let ((left_hist, left_best), (right_hist, right_best)) = if left_is_small {
            ((small, small_best), (large, large_best))
        } else {
            ((large, large_best), (small, small_best))
        };
        leaves[index] = LeafState {
            start,
            len: left_len,
            depth,
            stats: candidate.left,
            bounds: left_bounds,
            histogram: left_hist,
            best: left_best,
            parent: Some((node, true)),
        };
        leaves.push(LeafState {
            start: start + left_len,
            len: len - left_len,
            depth,
            stats: candidate.right,
            bounds: right_bounds,
            histogram: right_hist,
            best: right_best,
            parent: Some((node, false)),
        });
    }

    // Quantized: each leaf's value from its rows' exact gradients (a sum
    // per leaf, in row order, so the thread count changes nothing).
    let renewed: Vec<Stats> = match quantized {
        None => leaves.iter().map(|leaf| leaf.stats).collect(),
        Some(_) => {
            let ranges: Vec<(usize, usize)> =
                leaves.iter().map(|l| (l.start, l.start + l.len)).collect();
            let (sum_g, sum_h) = rayon::join(
                || leaf_sums(&rows, &ranges, g),
                || leaf_sums(&rows, &ranges, h),
            );
            leaves
                .iter()
                .zip(sum_g.into_iter().zip(sum_h))
                .map(|(leaf, (g, h))| Stats {
                    g,
                    h,
                    n: leaf.len as u32,
                })
                .collect()
        }
    };
    for (leaf, stats) in leaves.iter().zip(&renewed) {
        tree.leaf_value
            .push(leaf_output(stats, params, params.lambda_l2, leaf.bounds) * shrinkage);
        tree.leaf_count.push(f64::from(leaf.stats.n));
    }
    let ranges = leaves.iter().map(|l| (l.start, l.start + l.len)).collect();
    Grown {
        tree,
        node_splits,
        rows,
        ranges,
    }
}

/// Each leaf's sum of `values` over its rows (`rows[start..end]` for each
/// of `ranges`, ascending), added in row order: the same sums as one pass
/// per leaf. The passes go together through the table a chunk of rows at a
/// time, so each chunk of `values` is read from memory once while it is in
/// cache, instead of once per leaf that has a row in each cache line.
fn leaf_sums(rows: &[u32], ranges: &[(usize, usize)], values: &[f64]) -> Vec<f64> {
    const CHUNK: usize = 8 * 1024;
    let mut sums = vec![0.0; ranges.len()];
    let mut cursors: Vec<usize> = ranges.iter().map(|&(start, _)| start).collect();
    for chunk_start in (0..values.len()).step_by(CHUNK) {
        let chunk_end = chunk_start + CHUNK;
        for ((sum, cursor), &(_, end)) in sums.iter_mut().zip(&mut cursors).zip(ranges) {
            let mut acc = *sum;
            let mut taken = 0;
            for &r in &rows[*cursor..end] {
                if r as usize >= chunk_end {
                    break;
                }
                acc += values[r as usize];
                taken += 1;
            }
            *sum = acc;
            *cursor += taken;
        }
    }
    sums
}

/// The exact gradient and hessian sums of `rows`, in row order.
fn exact_stats(rows: &[u32], g: &[f64], h: &[f64]) -> Stats {
    let mut stats = Stats::default();
    for &r in rows {
        stats.add(&Stats {
            g: g[r as usize],
            h: h[r as usize],
            n: 1,
        });
    }
    stats
}

/// The raw-value test equal to a bin split.
fn raw_split(mapper: &BinMapper, split: &BinSplit) -> Split {
    match (mapper, split) {
        (
            BinMapper::Numeric { upper, has_missing },
            BinSplit::Numeric {
                last_left,
                default_left,
            },
        ) => Split::Numeric {
            threshold: upper[*last_left as usize],
            default_left: *default_left,
            missing: if *has_missing {
                MissingType::NaN
            } else {
                MissingType::None
            },
        },
        (BinMapper::Categorical { categories }, BinSplit::Categorical { left }) => {
            let max = categories.iter().copied().max().unwrap_or(0).max(0) as usize;
            let mut bitset = vec![0u32; max / 32 + 1];
            for (bin, &category) in categories.iter().enumerate() {
                if left[bin] && category >= 0 {
                    bitset[category as usize / 32] |= 1 << (category as usize % 32);
                }
            }
            Split::Categorical { bitset }
        }
        // The learner pairs each mapper with its own kind of split.
        (_, _) => Split::Categorical { bitset: Vec::new() },
    }
}

/// The bin-level test of each internal node of a grown tree: (feature,
/// split, the feature's missing bin), numbered as the tree's nodes.
pub(crate) struct BinTests(Vec<(usize, BinSplit, u8)>);

impl BinTests {
    /// The leaf of `tree` that a row whose bin in feature `f` is
    /// `bin_of(f)` reaches.
    pub(crate) fn leaf(&self, tree: &Tree, bin_of: impl Fn(usize) -> u8) -> usize {
        if self.0.is_empty() {
            return 0;
        }
        let mut node = 0i32;
        while node >= 0 {
            let (feature, split, missing_bin) = &self.0[node as usize];
            node = if goes_left(split, bin_of(*feature), *missing_bin) {
                tree.left_child[node as usize]
            } else {
                tree.right_child[node as usize]
            };
        }
        !node as usize
    }

    /// The leaf a row binned row-major (one byte per feature) reaches.
    pub(crate) fn leaf_of_row(&self, tree: &Tree, bins: &[u8]) -> usize {
        self.leaf(tree, |f| bins[f])
    }
}

impl Grown {
    /// The leaf a binned training row reaches.
    pub(crate) fn leaf_of(&self, data: &Binned, row: usize) -> usize {
        self.node_splits.leaf(&self.tree, |f| data.columns[f][row])
    }

    /// The tree, its bin-level tests (for rows binned outside training) and
    /// the row buffer (for the next tree's bag).
    pub(crate) fn into_parts(self) -> (Tree, BinTests, Vec<u32>) {
        (self.tree, self.node_splits, self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The partition is the stable one: the left rows in order, then the
    /// right rows in order, whatever the buffer held before.
    fn check_partition(rows: Vec<u32>, column: &[u8], threshold: u8, dirty: usize) {
        let left_of = |bin: u8| bin <= threshold;
        let expected: Vec<u32> = rows
            .iter()
            .copied()
            .filter(|&r| left_of(column[r as usize]))
            .chain(
                rows.iter()
                    .copied()
                    .filter(|&r| !left_of(column[r as usize])),
            )
            .collect();
        let mut out = vec![u32::MAX; dirty];
        let mut got = rows;
        let left = partition(&mut got, &mut out, column, left_of);
        assert_eq!(got, expected);
        assert_eq!(
            left,
            expected
                .iter()
                .filter(|&&r| left_of(column[r as usize]))
                .count()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn partition_is_stable_across_parallel_chunks(
            len in prop_oneof![0usize..64, PARALLEL_CHUNK - 2..PARALLEL_CHUNK + 3, 3 * PARALLEL_CHUNK..4 * PARALLEL_CHUNK],
            seed in any::<u64>(),
            threshold in any::<u8>(),
            dirty in 0usize..5 * PARALLEL_CHUNK,
        ) {
            // An ascending leaf of rows drawn from a larger table, as a leaf is.
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let column: Vec<u8> = (0..2 * len + 1).map(|_| next() as u8).collect();
            let rows: Vec<u32> = (0..column.len() as u32).filter(|_| next() % 2 == 0).take(len).collect();
            check_partition(rows, &column, threshold, dirty);
        }
    }

    /// Quantized gradients leave the split search to infer counts from
    /// hessians. Where a few rows carry most of the hessian, it takes them
    /// for many rows and picks a split that sets them apart; the
    /// partition's exact count turns that split down, and no leaf ends with
    /// fewer than `min_data_in_leaf` rows. Every leaf's count is its rows.
    #[test]
    fn quantized_splits_keep_min_data_in_leaf_exactly() {
        let rows = 2000;
        // The 10 heavy rows alone in the lowest bin.
        let x: Vec<f64> = (0..rows)
            .map(|r| if r < 10 { 0.0 } else { f64::from(1 + r % 100) })
            .collect();
        let mapper = crate::binning::BinMapper::numeric(&x, 255, 1);
        let bins: Vec<u8> = x.iter().map(|&v| mapper.bin(v)).collect();
        let data = Binned::from_rows(vec![mapper], vec![FeatureKind::Numeric], bins);
        // The first 10 rows: uncertain, pulled one way. The rest: confident.
        let heavy = |r: usize| r < 10;
        let g: Vec<f64> = (0..rows as usize)
            .map(|r| {
                if heavy(r) {
                    -0.5
                } else {
                    0.001 * (r % 3) as f64 - 0.001
                }
            })
            .collect();
        let h: Vec<f64> = (0..rows as usize)
            .map(|r| if heavy(r) { 0.25 } else { 0.001 })
            .collect();
        let params = GbdtParams {
            num_leaves: 4,
            use_quantized_grad: true,
            ..GbdtParams::default()
        };
        let mut quantizer = crate::quantize::Quantizer::new(rows as usize, 4, 3);
        let q = quantizer.quantize(&g, &h, 0.5, 0.25);
        let grown = grow(
            &data,
            &params,
            &[true],
            &g,
            &h,
            Some(q),
            (0..rows).collect(),
            1.0,
            &mut TreeBuffers::default(),
        );
        assert!(grown.tree.leaf_count.len() > 1, "the tree split");
        for (&count, &(start, end)) in grown.tree.leaf_count.iter().zip(&grown.ranges) {
            assert_eq!(count, (end - start) as f64);
            assert!(
                count >= params.min_data_in_leaf as f64,
                "a leaf of {count} rows"
            );
        }
    }
}
