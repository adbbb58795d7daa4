//! Quantized gradients (LightGBM's `use_quantized_grad`, Shi et al. 2022,
//! "Quantized Training of Gradient Boosting Decision Trees").
//!
//! Each round, gradients are scaled so the largest |g| is `bins / 2` and
//! hessians so the largest h is `bins`, then rounded stochastically to
//! integers (up with the probability of the fraction, so the rounding is
//! unbiased). A row's integers are packed into one word,
//! `g·2⁴⁰ + h·2²⁰ + 1` (g in two's complement in the top 24 bits), so a
//! histogram cell sums a row with one 64-bit add and holds the gradient
//! sum, the hessian sum and the row count at once, in 8 bytes instead of
//! 24. A block of rows sums at most [`Quantized::max_block_rows`] rows into
//! a cell, so no field carries into the next.
//!
//! The noise of the rounding is drawn once per row from the one seed, and
//! each round starts reading it at an offset drawn from the same stream:
//! the same seed gives the same integers at any thread count.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

const FIELD_BITS: u32 = 20;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
/// The gradient sum's field: the top 64 − 2·20 bits, signed.
const G_SHIFT: u32 = 2 * FIELD_BITS;
const G_LIMIT: i64 = (1 << (63 - G_SHIFT)) - 1;

/// One round's gradients quantized.
pub(crate) struct Quantized {
    /// Per row: the packed word (see the module doc).
    pub(crate) packed: Vec<u64>,
    /// Gradient units per integer step.
    pub(crate) g_scale: f64,
    /// Hessian units per integer step.
    pub(crate) h_scale: f64,
    /// Most rows one cell may sum before a field could overflow.
    pub(crate) max_block_rows: usize,
}

/// A cell's (or a row's) packed sums: (gradient, hessian, rows).
pub(crate) fn unpack(cell: u64) -> (i64, u64, u64) {
    (
        (cell as i64) >> G_SHIFT,
        (cell >> FIELD_BITS) & FIELD_MASK,
        cell & FIELD_MASK,
    )
}

fn pack(g: i64, h: u64) -> u64 {
    ((g as u64) << G_SHIFT)
        .wrapping_add(h << FIELD_BITS)
        .wrapping_add(1)
}

/// Quantizes each round's gradients of one training table.
pub(crate) struct Quantizer {
    bins: usize,
    /// Two uniform draws in [0, 1) per row: the gradient's and the hessian's.
    noise: Vec<f32>,
    rng: Xoshiro256PlusPlus,
    /// The last round's result; its words are overwritten the next round
    /// (a fresh vector each round was fresh pages to fault in and zero).
    round: Quantized,
}

/// Rows per parallel task (fixed, so the work split never depends on the
/// thread count; the result would not either).
const CHUNK: usize = 8192;

impl Quantizer {
    /// `bins` in 2..=64 (checked with the parameters).
    pub(crate) fn new(rows: usize, bins: usize, seed: u64) -> Self {
        // A stream of its own, so bagging and feature sampling draw the
        // same values with or without quantization.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x51ab_1e5e_ed00_9e37);
        let noise = (0..2 * rows).map(|_| rng.random::<f32>()).collect();
        Quantizer {
            bins,
            noise,
            rng,
            round: Quantized {
                packed: vec![0; rows],
                g_scale: 1.0,
                h_scale: 1.0,
                max_block_rows: 1,
            },
        }
    }

    /// This round's `g` and `h` as packed integers; `max_g` is the largest
    /// |g| and `max_h` the largest h (the caller has them already).
    pub(crate) fn quantize(&mut self, g: &[f64], h: &[f64], max_g: f64, max_h: f64) -> &Quantized {
        let rows = g.len();
        let offset = if rows == 0 {
            0
        } else {
            self.rng.random_range(0..rows)
        };
        let half = (self.bins / 2) as f64;
        let g_scale = if max_g > 0.0 { max_g / half } else { 1.0 };
        let h_scale = if max_h > 0.0 {
            max_h / self.bins as f64
        } else {
            1.0
        };
        let noise = &self.noise;
        let packed = &mut self.round.packed;
        packed.resize(rows, 0);
        packed
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(chunk, out)| {
                let first = chunk * CHUNK;
                let (g, h) = (&g[first..first + out.len()], &h[first..first + out.len()]);
                // This chunk's noise: from row `first + offset`, wrapping
                // around the end once at most (no division per row).
                let start = (first + offset) % rows;
                let (tail, head) = noise.split_at(2 * start);
                let draws = head.chunks_exact(2).chain(tail.chunks_exact(2));
                for (((word, &g), &h), uv) in out.iter_mut().zip(g).zip(h).zip(draws) {
                    let (ug, uh) = (f64::from(uv[0]), f64::from(uv[1]));
                    // Truncation toward zero is the floor (or, below zero,
                    // the ceiling) wanted, without a call to libm's floor.
                    let gq = g / g_scale;
                    let gi = if gq >= 0.0 { gq + ug } else { gq - ug } as i64;
                    let hi = (h / h_scale + uh) as u64;
                    *word = pack(gi, hi);
                }
            });
        // A cell of `n` rows holds at most n·bins in the hessian's field
        // and n·bins/2 in the gradient's.
        let max_block_rows = (FIELD_MASK as usize / self.bins)
            .min(G_LIMIT as usize / (self.bins / 2).max(1))
            .max(1);
        self.round.g_scale = g_scale;
        self.round.h_scale = h_scale;
        self.round.max_block_rows = max_block_rows;
        &self.round
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_rows_sum_into_their_three_fields() {
        let rows = [(-2i64, 4u64), (2, 0), (-1, 3), (0, 1), (-2, 2)];
        let mut cell = 0u64;
        for &(g, h) in &rows {
            assert_eq!(unpack(pack(g, h)), (g, h, 1));
            cell = cell.wrapping_add(pack(g, h));
        }
        assert_eq!(unpack(cell), (-3, 10, 5));
        // At the block limit, with every row at its extreme.
        let mut quantizer = Quantizer::new(1, 4, 0);
        let q = quantizer.quantize(&[1.0], &[1.0], 1.0, 1.0);
        let n = q.max_block_rows as u64;
        let full = (0..n).fold(0u64, |c, _| c.wrapping_add(pack(-2, 4)));
        assert_eq!(unpack(full), (-2 * n as i64, 4 * n, n));
    }

    #[test]
    fn rounding_is_unbiased_and_within_the_levels() {
        let rows = 200_000;
        let g: Vec<f64> = (0..rows)
            .map(|i| ((i % 1000) as f64 / 500.0) - 1.0)
            .collect();
        let h: Vec<f64> = (0..rows)
            .map(|i| 0.25 * ((i % 997) as f64 / 997.0))
            .collect();
        let mut quantizer = Quantizer::new(rows, 4, 7);
        let max_g = g.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
        let max_h = h.iter().fold(0.0, |m: f64, &v| m.max(v));
        let q = quantizer.quantize(&g, &h, max_g, max_h);
        let (mut sum_g, mut sum_h) = (0i64, 0u64);
        for &word in &q.packed {
            let (gi, hi, n) = unpack(word);
            assert!((-2..=2).contains(&gi) && hi <= 4 && n == 1);
            sum_g += gi;
            sum_h += hi;
        }
        let exact_g: f64 = g.iter().sum();
        let exact_h: f64 = h.iter().sum();
        // The sums of the rounded values are within a few standard errors
        // (each rounding's variance is at most 1/4 of a step squared).
        let tolerance = 5.0 * (rows as f64 / 4.0).sqrt();
        assert!((sum_g as f64 - exact_g / q.g_scale).abs() < tolerance);
        assert!((sum_h as f64 - exact_h / q.h_scale).abs() < tolerance);
        // The same seed, the same integers.
        let packed = q.packed.clone();
        let mut again = Quantizer::new(rows, 4, 7);
        assert_eq!(again.quantize(&g, &h, max_g, max_h).packed, packed);
    }
}
