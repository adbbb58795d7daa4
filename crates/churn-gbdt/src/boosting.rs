//! The boosting loop: gradients → tree → scores, with bagging, feature
//! sampling and early stopping; every random draw from the one seed.

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::index::sample;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::GbdtError;
use crate::binning::BinMapper;
use crate::grower::{Binned, TreeBuffers, grow};
use crate::metric::{auc, log_loss_sums};
use crate::model::{FeatureKind, Model, row_count};
use crate::objective::{BinaryLogLoss, Objective};
use crate::params::{StoppingMetric, ValidGbdtParams};
use crate::quantize::Quantizer;

/// A table to train or validate on: dense row-major `f64` features.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// `rows × feature_names.len()` values, row-major; NaN is missing.
    pub features: &'a [f64],
    /// 0/1 labels, one per row.
    pub labels: &'a [f64],
    /// Optional non-negative row weights.
    pub weights: Option<&'a [f64]>,
}

/// Column names and kinds of the training table.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Feature names, in column order.
    pub names: Vec<String>,
    /// Kind of each column.
    pub kinds: Vec<FeatureKind>,
}

/// What happened during training.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainLog {
    /// Validation metric after each round (empty without validation data).
    pub valid_metric: Vec<f64>,
    /// The round kept by early stopping (1-based), if it ran.
    pub best_iteration: Option<usize>,
    /// Wall seconds spent binning the features before the first round (for
    /// a caller's phase timings; nothing of the model depends on it).
    pub bin_seconds: f64,
}

/// Largest categorical code accepted (codes index a bitset).
pub const MAX_CATEGORY: f64 = 1_000_000.0;

fn check_data(data: &TrainData, width: usize, what: &str) -> Result<(usize, Vec<f64>), GbdtError> {
    let rows = row_count(data.features.len(), width.max(1))?;
    if data.labels.len() != rows {
        return Err(GbdtError::Shape(format!(
            "{what}: {} labels for {rows} rows",
            data.labels.len()
        )));
    }
    if let Some(i) = data.labels.iter().position(|y| *y != 0.0 && *y != 1.0) {
        return Err(GbdtError::InvalidData(format!(
            "{what}: label at row {i} is {}, not 0 or 1",
            data.labels[i]
        )));
    }
    let weights = match data.weights {
        Some(w) if w.len() != rows => {
            return Err(GbdtError::Shape(format!(
                "{what}: {} weights for {rows} rows",
                w.len()
            )));
        }
        Some(w) => {
            if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(GbdtError::InvalidData(format!(
                    "{what}: weight at row {i} is {}, not a finite number ≥ 0",
                    w[i]
                )));
            }
            w.to_vec()
        }
        None => vec![1.0; rows],
    };
    Ok((rows, weights))
}

/// Trains a binary classifier. `valid` enables early stopping and the log.
pub fn train(
    params: &ValidGbdtParams,
    schema: &Schema,
    data: &TrainData,
    valid: Option<&TrainData>,
) -> Result<(Model, TrainLog), GbdtError> {
    train_with_progress(params, schema, data, valid, &mut |_| {})
}

/// [`train`], calling `progress` with the number of rounds done after each
/// boosting round (for a progress bar; it cannot change the result).
pub fn train_with_progress(
    params: &ValidGbdtParams,
    schema: &Schema,
    data: &TrainData,
    valid: Option<&TrainData>,
    progress: &mut dyn FnMut(usize),
) -> Result<(Model, TrainLog), GbdtError> {
    let p = params.get();
    let width = schema.names.len();
    if schema.kinds.len() != width || width == 0 {
        return Err(GbdtError::Shape(
            "schema needs one kind per feature and at least one feature".into(),
        ));
    }
    if !p.monotone_constraints.is_empty() && p.monotone_constraints.len() != width {
        return Err(GbdtError::InvalidParam {
            name: "monotone_constraints",
            reason: format!(
                "{} values for {width} features",
                p.monotone_constraints.len()
            ),
        });
    }
    let (rows, weights) = check_data(data, width, "training data")?;
    if rows == 0 {
        return Err(GbdtError::InvalidData("training data has no rows".into()));
    }
    let positive_weight: f64 = data.labels.iter().zip(&weights).map(|(y, w)| y * w).sum();
    let total_weight: f64 = weights.iter().sum();
    if total_weight <= 0.0 {
        return Err(GbdtError::InvalidData("every training weight is 0".into()));
    }
    if positive_weight == 0.0 || positive_weight == total_weight {
        return Err(GbdtError::InvalidData(
            "every training label is the same: there is nothing to learn".into(),
        ));
    }

    const SCORE_CHUNK: usize = 32 * 1024;
    let binning = std::time::Instant::now();
    // The bin boundaries come from at most `bin_construct_sample_cnt` rows
    // (a draw of their own from the one seed, in row order); every row is
    // then binned by them.
    let sampled: Option<Vec<usize>> = (rows > p.bin_construct_sample_cnt).then(|| {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0xb1a5_5a4d_0c0f_fee5);
        let mut picked =
            rand::seq::index::sample(&mut rng, rows, p.bin_construct_sample_cnt).into_vec();
        picked.sort_unstable();
        picked
    });
    // Prediction reads NaN as 0.0 under MissingType::None (no use_missing):
    // train the same way.
    let zeroed: Vec<bool> = (0..width)
        .map(|f| !p.use_missing && schema.kinds[f] == FeatureKind::Numeric)
        .collect();
    // Each feature's bins from the sample, in parallel (errors reported in
    // feature order).
    let mappers: Vec<Result<BinMapper, GbdtError>> = (0..width)
        .into_par_iter()
        .map(|f| {
            let value = |r: usize| {
                let x = data.features[r * width + f];
                if zeroed[f] && x.is_nan() { 0.0 } else { x }
            };
            let sample: Vec<f64> = match &sampled {
                Some(picked) => picked.iter().map(|&r| value(r)).collect(),
                None => (0..rows).map(value).collect(),
            };
            match schema.kinds[f] {
                FeatureKind::Numeric => Ok(BinMapper::numeric(&sample, p.max_bin, 3)),
                FeatureKind::Categorical => {
                    if let Some(bad) = (0..rows).map(value).find(|v| *v > MAX_CATEGORY) {
                        return Err(GbdtError::InvalidData(format!(
                            "categorical feature {:?} has code {bad}; codes must be integers in 0..={MAX_CATEGORY}",
                            schema.names[f]
                        )));
                    }
                    if p.monotone_constraints.get(f).is_some_and(|c| *c != 0) {
                        return Err(GbdtError::InvalidParam {
                            name: "monotone_constraints",
                            reason: format!(
                                "categorical feature {:?} cannot be monotone",
                                schema.names[f]
                            ),
                        });
                    }
                    Ok(BinMapper::categorical(&sample, p.max_bin))
                }
            }
        })
        .collect();
    let mut mappers = mappers
        .into_iter()
        .collect::<Result<Vec<BinMapper>, GbdtError>>()?;
    let bins = bin_rows(&mappers, data.features, &zeroed);
    let binned = Binned::from_rows(mappers.clone(), schema.kinds.clone(), bins);
    // A missing value the sample did not hold is still missing.
    for (f, mapper) in mappers.iter_mut().enumerate() {
        if let BinMapper::Numeric { upper, has_missing } = mapper {
            *has_missing |= binned.counts_of(f)[upper.len()] > 0;
        }
    }
    let binned = binned.with_mappers(mappers);
    let bin_seconds = binning.elapsed().as_secs_f64();

    let objective = BinaryLogLoss {
        scale_pos_weight: p.scale_pos_weight,
    };
    let init = objective.init_score(data.labels, &weights);
    let mut scores = vec![init; rows];
    let mut g = vec![0.0; rows];
    let mut h = vec![0.0; rows];

    let mut valid_setup = match valid {
        Some(v) => {
            let (n, w) = check_data(v, width, "validation data")?;
            // Bins that reach the leaf the raw-value tests reach: a numeric
            // split over training rows without NaN reads NaN as 0.0.
            let nan_as_zero: Vec<bool> = binned
                .mappers
                .iter()
                .map(|m| {
                    matches!(
                        m,
                        BinMapper::Numeric {
                            has_missing: false,
                            ..
                        }
                    )
                })
                .collect();
            let vbins = bin_rows(&binned.mappers, v.features, &nan_as_zero);
            Some((v, w, vec![init; n], vbins))
        }
        None => None,
    };

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    let mut quantizer = p
        .use_quantized_grad
        .then(|| Quantizer::new(rows, p.num_grad_quant_bins, p.seed));
    let mut bag: Vec<u32> = (0..rows as u32).collect();
    let mut buffers = TreeBuffers::default();
    let mut tree_rows: Vec<u32> = Vec::with_capacity(rows);
    let mut trees = Vec::with_capacity(p.num_iterations);
    let mut log = TrainLog {
        valid_metric: Vec::new(),
        best_iteration: None,
        bin_seconds,
    };
    let mut best: Option<(usize, f64)> = None;

    for iteration in 0..p.num_iterations {
        progress(iteration);
        // Fixed-size chunks: the work split never depends on the thread count.
        // With quantized gradients, the largest |g| and h (the quantizer's
        // scales) come along, read while each chunk is in cache; a maximum
        // is the same in any order.
        let want_maxima = quantizer.is_some();
        let (max_abs_g, max_h) = g
            .par_chunks_mut(8192)
            .zip(h.par_chunks_mut(8192))
            .enumerate()
            .map(|(chunk, (gc, hc))| {
                let at = chunk * 8192;
                let end = at + gc.len();
                objective.gradients(
                    &scores[at..end],
                    &data.labels[at..end],
                    &weights[at..end],
                    gc,
                    hc,
                );
                if !want_maxima {
                    return (0.0, 0.0);
                }
                (
                    gc.iter().fold(0.0, |m: f64, v| m.max(v.abs())),
                    hc.iter().fold(0.0, |m: f64, &v| m.max(v)),
                )
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
        if p.bagging_freq > 0 && p.bagging_fraction < 1.0 && iteration % p.bagging_freq == 0 {
            let keep = ((rows as f64 * p.bagging_fraction).round() as usize).clamp(1, rows);
            bag = bag_rows(&mut rng, rows, keep);
        }
        let allowed = feature_sample(&mut rng, width, p.feature_fraction);
        let quantized = quantizer
            .as_mut()
            .map(|q| q.quantize(&g, &h, max_abs_g, max_h));
        tree_rows.clear();
        tree_rows.extend_from_slice(&bag);
        // On a pool thread: each of the tree's many parallel loops started
        // from outside the pool would pay a sleep and wake-up round trip.
        let grown = rayon::scope(|_| {
            grow(
                &binned,
                p,
                &allowed,
                &g,
                &h,
                quantized,
                std::mem::take(&mut tree_rows),
                p.learning_rate,
                &mut buffers,
            )
        });

        // Scores: bag rows by their leaf range, the others through the tree.
        // Each leaf's rows ascend (the bag is sorted and partitions are
        // stable), so a chunk of rows finds its own in every leaf by binary
        // search and the chunks add in parallel, each row once.
        let grown_ref = &grown;
        let binned_ref = &binned;
        scores
            .par_chunks_mut(SCORE_CHUNK)
            .enumerate()
            .for_each(|(chunk, part)| {
                let first = chunk * SCORE_CHUNK;
                let last = first + part.len();
                // Each leaf's rows that fall in this chunk.
                let mine: Vec<&[u32]> = grown_ref
                    .ranges
                    .iter()
                    .map(|&(start, end)| {
                        let leaf_rows = &grown_ref.rows[start..end];
                        let from = leaf_rows.partition_point(|&r| (r as usize) < first);
                        let to = leaf_rows.partition_point(|&r| (r as usize) < last);
                        &leaf_rows[from..to]
                    })
                    .collect();
                for (leaf, rows) in mine.iter().enumerate() {
                    let value = grown_ref.tree.leaf_value[leaf];
                    for &r in *rows {
                        part[r as usize - first] += value;
                    }
                }
                if mine.iter().map(|rows| rows.len()).sum::<usize>() < part.len() {
                    let mut inside = vec![false; part.len()];
                    for &r in mine.iter().flat_map(|rows| rows.iter()) {
                        inside[r as usize - first] = true;
                    }
                    for (i, score) in part.iter_mut().enumerate() {
                        if !inside[i] {
                            *score +=
                                grown_ref.tree.leaf_value[grown_ref.leaf_of(binned_ref, first + i)];
                        }
                    }
                }
            });
        let (mut tree, node_splits, rows_buffer) = grown.into_parts();
        tree_rows = rows_buffer;
        if iteration == 0 {
            // The initial score lives in the first tree, as in LightGBM.
            for v in &mut tree.leaf_value {
                *v += init;
            }
        }

        if let Some((v, w, vscores, vbins)) = valid_setup.as_mut() {
            // The first tree carries `init`, which the start scores already hold.
            let offset = if iteration == 0 { init } else { 0.0 };
            let (tree_ref, tests, vbins, labels, weights) =
                (&tree, &node_splits, &*vbins, v.labels, &*w);
            // Each chunk's log loss summed where its scores are updated, the
            // chunks added in order: the same sum at any thread count.
            let sums: Vec<(f64, f64)> = vscores
                .par_chunks_mut(VALID_CHUNK)
                .zip(vbins.par_chunks(VALID_CHUNK * width))
                .enumerate()
                .map(|(chunk, (part, bins))| {
                    for (s, row) in part.iter_mut().zip(bins.chunks_exact(width)) {
                        *s += tree_ref.leaf_value[tests.leaf_of_row(tree_ref, row)] - offset;
                    }
                    if p.stopping_metric != StoppingMetric::LogLoss {
                        return (0.0, 0.0);
                    }
                    let at = chunk * VALID_CHUNK;
                    let end = at + part.len();
                    log_loss_sums(part, &labels[at..end], &weights[at..end])
                })
                .collect();
            let metric = match p.stopping_metric {
                StoppingMetric::LogLoss => {
                    let (loss, total) = sums
                        .iter()
                        .fold((0.0, 0.0), |(l, t), (cl, ct)| (l + cl, t + ct));
                    loss / total
                }
                StoppingMetric::Auc => -auc(vscores, v.labels, w),
            };
            log.valid_metric.push(match p.stopping_metric {
                StoppingMetric::LogLoss => metric,
                StoppingMetric::Auc => -metric,
            });
            if best.is_none_or(|(_, b)| metric < b) {
                best = Some((iteration, metric));
            }
            trees.push(tree);
            if let (Some(patience), Some((at, _))) = (p.early_stopping_rounds, best)
                && iteration - at >= patience
            {
                break;
            }
        } else {
            trees.push(tree);
        }
    }

    if let (Some(_), Some((at, _))) = (p.early_stopping_rounds, best) {
        trees.truncate(at + 1);
        log.best_iteration = Some(at + 1);
    }
    let model = Model {
        trees,
        feature_names: schema.names.clone(),
        feature_kinds: schema.kinds.clone(),
        sigmoid: 1.0,
        best_iteration: log.best_iteration,
    };
    Ok((model, log))
}

/// Validation rows per parallel scoring task (fixed: the log loss is summed
/// by these chunks).
const VALID_CHUNK: usize = 8192;

/// Rows per parallel binning task.
const BIN_CHUNK: usize = 16 * 1024;

/// Row-major values binned row by row (`bins[row * width + f]`) in one pass
/// (a column at a time would read the whole table once per feature); NaN in
/// a feature marked `nan_as_zero` is binned as 0.0. Training rows are binned
/// so (NaN as 0.0 where `use_missing` is off), and validation rows, so that
/// walking a tree's bin-level tests reaches the leaf its raw-value tests
/// reach: one byte per feature read each round instead of the raw values.
fn bin_rows(mappers: &[BinMapper], features: &[f64], nan_as_zero: &[bool]) -> Vec<u8> {
    let width = mappers.len();
    let mut bins = vec![0u8; features.len()];
    bins.par_chunks_mut(BIN_CHUNK * width)
        .zip(features.par_chunks(BIN_CHUNK * width))
        .for_each(|(out, values)| {
            for (row_bins, row) in out.chunks_exact_mut(width).zip(values.chunks_exact(width)) {
                for (f, (bin, &x)) in row_bins.iter_mut().zip(row).enumerate() {
                    let x = if nan_as_zero[f] && x.is_nan() { 0.0 } else { x };
                    *bin = mappers[f].bin(x);
                }
            }
        });
    bins
}

/// `keep` of `rows` row indices, each subset equally likely, in ascending
/// order: selection sampling (Knuth's Algorithm S), one draw per row
/// considered and no sort, as LightGBM bags.
fn bag_rows(rng: &mut Xoshiro256PlusPlus, rows: usize, keep: usize) -> Vec<u32> {
    let mut chosen = Vec::with_capacity(keep);
    let mut needed = keep;
    for row in 0..rows {
        if needed == 0 {
            break;
        }
        // Chosen with probability needed / (rows left): exactly `keep` in all.
        if rng.random::<f64>() * ((rows - row) as f64) < needed as f64 {
            chosen.push(row as u32);
            needed -= 1;
        }
    }
    chosen
}

fn feature_sample(rng: &mut Xoshiro256PlusPlus, width: usize, fraction: f64) -> Vec<bool> {
    if fraction >= 1.0 {
        return vec![true; width];
    }
    let keep = ((width as f64 * fraction).round() as usize).clamp(1, width);
    let mut allowed = vec![false; width];
    for i in sample(rng, width, keep) {
        allowed[i] = true;
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bag_holds_exactly_its_share_in_order_and_every_row_equally_often() {
        let (rows, keep, draws) = (1000, 300, 2000);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut times = vec![0u32; rows];
        let (mut first_and_last, mut first_two) = (0u32, 0u32);
        for _ in 0..draws {
            let bag = bag_rows(&mut rng, rows, keep);
            assert_eq!(bag.len(), keep);
            assert!(bag.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats");
            for &r in &bag {
                times[r as usize] += 1;
            }
            let has = |r: u32| bag.binary_search(&r).is_ok();
            first_and_last += u32::from(has(0) && has(rows as u32 - 1));
            first_two += u32::from(has(0) && has(1));
        }
        // Each row with probability keep / rows: 600 of 2000, sd 20.5.
        let p = keep as f64 / rows as f64;
        let (mean, sd) = (draws as f64 * p, (draws as f64 * p * (1.0 - p)).sqrt());
        for (r, &t) in times.iter().enumerate() {
            assert!(
                (f64::from(t) - mean).abs() < 5.0 * sd,
                "row {r}: {t} of {draws}"
            );
        }
        // Any two rows together with probability k(k−1) / (n(n−1)), far
        // apart or adjacent: 179.6 of 2000, sd about 12.9.
        let pair = (keep * (keep - 1)) as f64 / (rows * (rows - 1)) as f64;
        let (mean, sd) = (
            draws as f64 * pair,
            (draws as f64 * pair * (1.0 - pair)).sqrt(),
        );
        for both in [first_and_last, first_two] {
            assert!(
                (f64::from(both) - mean).abs() < 5.0 * sd,
                "{both} vs {mean}"
            );
        }
        assert_eq!(bag_rows(&mut rng, 5, 5), vec![0, 1, 2, 3, 4]);
        assert_eq!(bag_rows(&mut rng, 5, 1).len(), 1);
    }
}
