//! Quantized gradients (LightGBM's `use_quantized_grad`, Shi et al. 2022,
//! "Quantized Training of Gradient Boosting Decision Trees").
//!
//! Each round, gradients are scaled so the largest |g| is `bins / 2` and
//! hessians so the largest h is `bins`, then rounded stochastically to
//! integers (up with the probability of the fraction, so the rounding is
//! unbiased). A row's integers are packed into one word, the hessian in the
//! low half and the gradient in two's complement in the high half, so a
//! histogram cell sums a row with one integer add and holds both sums at
//! once. With up to 8 levels the word is 32 bits (16-bit fields, as
//! LightGBM's int16 histograms): a 256-bin feature's cells take 1 KiB, and
//! a block's cells for a table of 40 features fit a core's L1 cache. With
//! more levels 16-bit fields would hold too few rows per cell, and the word
//! is 64 bits. A block of rows sums at most [`Quantized::max_block_rows`]
//! rows into a cell, so no field carries into the next.
//!
//! A cell holds no row count. As in LightGBM's quantized mode, the split
//! search infers a count from the hessian sum (see `grower::Counts`); the
//! split it chooses is then checked against the exact counts.
//!
//! The noise of the rounding is drawn once per row from the one seed, and
//! each round starts reading it at an offset drawn from the same stream:
//! the same seed gives the same integers at any thread count.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

/// A packed (gradient, hessian) word: one row's integers, or a cell's sums.
pub(crate) trait Packed: Copy + Default + Send + Sync {
    /// The row's word; `g` and `h` within the quantizer's levels.
    fn pack(g: i32, h: u32) -> Self;
    /// Sums of two words (fields that fit add without carrying).
    fn add(self, other: Self) -> Self;
    /// (gradient, hessian).
    fn unpack(self) -> (i64, u64);
    /// Most rows whose words one cell may sum, with `bins` levels, before a
    /// field could overflow: a row holds at most `bins` in the hessian's
    /// field and `bins / 2` in the gradient's.
    fn max_rows(bins: usize) -> usize;
}

macro_rules! packed_word {
    ($word:ty, $signed:ty, $half:ty, $half_signed:ty) => {
        impl Packed for $word {
            fn pack(g: i32, h: u32) -> Self {
                ((g as $half_signed as $word) << <$half>::BITS).wrapping_add(<$word>::from(h))
            }
            fn add(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            fn unpack(self) -> (i64, u64) {
                (
                    i64::from((self as $signed) >> <$half>::BITS),
                    u64::from(self as $half),
                )
            }
            fn max_rows(bins: usize) -> usize {
                (<$half>::MAX as usize / bins)
                    .min(<$half_signed>::MAX as usize / (bins / 2).max(1))
                    .max(1)
            }
        }
    };
}
packed_word!(u32, i32, u16, i16);
packed_word!(u64, i64, u32, i32);

/// Every row's packed word, in the width its number of levels needs.
pub(crate) enum Words {
    /// 16-bit fields: up to 8 levels.
    Narrow(Vec<u32>),
    /// 32-bit fields.
    Wide(Vec<u64>),
}

/// One round's gradients quantized.
pub(crate) struct Quantized {
    /// Per row: the packed word (see the module doc).
    pub(crate) words: Words,
    /// Gradient units per integer step.
    pub(crate) g_scale: f64,
    /// Hessian units per integer step.
    pub(crate) h_scale: f64,
    /// Most rows one cell may sum before a field could overflow.
    pub(crate) max_block_rows: usize,
}

impl Quantized {
    /// The gradient and hessian sums of `rows`, in gradient units.
    pub(crate) fn sums(&self, rows: &[u32]) -> (f64, f64) {
        fn integer_sums<W: Packed>(rows: &[u32], words: &[W]) -> (i64, u64) {
            rows.iter().fold((0, 0), |(g, h), &r| {
                let (rg, rh) = words[r as usize].unpack();
                (g + rg, h + rh)
            })
        }
        let (g, h) = match &self.words {
            Words::Narrow(words) => integer_sums(rows, words),
            Words::Wide(words) => integer_sums(rows, words),
        };
        (g as f64 * self.g_scale, h as f64 * self.h_scale)
    }
}

/// Most levels that 32-bit words serve: their 16-bit fields then hold
/// 8,191 rows per cell, a block of a leaf's rows. With more levels a cell
/// would hold fewer, leaves would split into more and smaller blocks, and
/// training would be slower than with 64-bit words (measured with 64
/// levels: 40% slower).
const NARROW_MAX_BINS: usize = 8;

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
        let (words, max_block_rows) = if bins <= NARROW_MAX_BINS {
            (Words::Narrow(vec![0; rows]), u32::max_rows(bins))
        } else {
            (Words::Wide(vec![0; rows]), u64::max_rows(bins))
        };
        Quantizer {
            bins,
            noise,
            rng,
            round: Quantized {
                words,
                g_scale: 1.0,
                h_scale: 1.0,
                max_block_rows,
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
        let scales = (g_scale, h_scale);
        match &mut self.round.words {
            Words::Narrow(words) => pack_rows(words, g, h, scales, &self.noise, offset),
            Words::Wide(words) => pack_rows(words, g, h, scales, &self.noise, offset),
        }
        self.round.g_scale = g_scale;
        self.round.h_scale = h_scale;
        &self.round
    }
}

/// Each row's `g` and `h` divided by their `scales` and rounded with the
/// row's draws from `noise`, starting `offset` rows into it, into `words`.
fn pack_rows<W: Packed>(
    words: &mut Vec<W>,
    g: &[f64],
    h: &[f64],
    scales: (f64, f64),
    noise: &[f32],
    offset: usize,
) {
    let rows = g.len();
    let (g_scale, h_scale) = scales;
    words.resize(rows, W::default());
    words
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
                let gi = if gq >= 0.0 { gq + ug } else { gq - ug } as i32;
                let hi = (h / h_scale + uh) as u32;
                *word = W::pack(gi, hi);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `word` added to itself `n` times (by doubling).
    fn times<W: Packed>(word: W, n: usize) -> W {
        let (mut sum, mut power, mut n) = (W::default(), word, n);
        while n > 0 {
            if n & 1 == 1 {
                sum = sum.add(power);
            }
            power = power.add(power);
            n >>= 1;
        }
        sum
    }

    /// Rows' words sum into their two fields, up to the block limit of
    /// every number of levels, and the limit is tight: one more row at the
    /// extremes carries.
    fn check_fields<W: Packed + PartialEq + std::fmt::Debug>() {
        let rows = [(-2i32, 4u32), (2, 0), (-1, 3), (0, 1), (-2, 2)];
        let mut cell = W::default();
        for &(g, h) in &rows {
            assert_eq!(W::pack(g, h).unpack(), (i64::from(g), u64::from(h)));
            cell = cell.add(W::pack(g, h));
        }
        assert_eq!(cell.unpack(), (-3, 10));
        for bins in [2, 4, 8, 16, 64] {
            let n = W::max_rows(bins);
            let half = (bins / 2) as i32;
            for (g, h) in [(-half, bins as u32), (half, bins as u32), (-half, 0)] {
                let expected = (i64::from(g) * n as i64, u64::from(h) * n as u64);
                assert_eq!(
                    times(W::pack(g, h), n).unpack(),
                    expected,
                    "{bins} levels, {n} rows"
                );
            }
            let (g, h) = (-half, bins as u32);
            let over = times(W::pack(g, h), n + 1).unpack();
            assert_ne!(
                over,
                (i64::from(g) * (n as i64 + 1), u64::from(h) * (n as u64 + 1))
            );
        }
    }

    #[test]
    fn packed_rows_sum_into_their_two_fields() {
        check_fields::<u32>();
        check_fields::<u64>();
        assert_eq!(u32::max_rows(NARROW_MAX_BINS), 8191);
    }

    fn unpacked(q: &Quantized) -> Vec<(i64, u64)> {
        match &q.words {
            Words::Narrow(words) => words.iter().map(|w| w.unpack()).collect(),
            Words::Wide(words) => words.iter().map(|w| w.unpack()).collect(),
        }
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
        let max_g = g.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
        let max_h = h.iter().fold(0.0, |m: f64, &v| m.max(v));
        // 4 levels in 32-bit words, 16 in 64-bit words.
        for bins in [4, 16] {
            let mut quantizer = Quantizer::new(rows, bins, 7);
            let q = quantizer.quantize(&g, &h, max_g, max_h);
            let half = (bins / 2) as i64;
            let (mut sum_g, mut sum_h) = (0i64, 0u64);
            let words = unpacked(q);
            for &(gi, hi) in &words {
                assert!((-half..=half).contains(&gi) && hi <= bins as u64);
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
            let mut again = Quantizer::new(rows, bins, 7);
            assert_eq!(unpacked(again.quantize(&g, &h, max_g, max_h)), words);
        }
    }
}
