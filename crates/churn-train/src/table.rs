//! The labelled table a model is fitted on, and its out-of-time split.

use churn_core::{Dataset, format_timestamp};
use churn_features::{FeatureSet, Grouped, SnapshotPlan};
use churn_model::{Input, InputSchema, Kind};

use crate::TrainError;

/// Labelled examples: numeric and categorical features, label, as-of time.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// (name, kind, description), numeric features first.
    pub features: Vec<(String, Kind, String)>,
    pub numeric: Vec<f64>,
    pub categorical: Vec<Option<String>>,
    pub labels: Vec<f64>,
    pub as_of: Vec<i64>,
    pub ids: Vec<String>,
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    pub fn numeric_len(&self) -> usize {
        self.features
            .iter()
            .filter(|f| f.1 == Kind::Numeric)
            .count()
    }

    pub fn categorical_len(&self) -> usize {
        self.features.len() - self.numeric_len()
    }

    /// The labelled examples of `dataset` at the plan's as-of times, with the
    /// registry's features and `set`'s (unlabelled ones are left out: they
    /// cannot be fitted or scored).
    pub fn from_dataset(dataset: &mut Dataset, plan: &SnapshotPlan, set: &FeatureSet) -> Table {
        let grouped = Grouped::new(dataset).with_features(set);
        let learners: Vec<u32> = (0..grouped.dataset().learners.len() as u32).collect();
        let examples = grouped.examples(&learners, plan).into_iter().flatten();
        Self::from_examples(grouped.dataset(), examples, set)
    }

    /// [`Self::from_dataset`] for events that come a partition of learners
    /// at a time (`events_of(k)` for `k < partitions`, each learner in one
    /// partition): the same rows in the same order (by learner index, then
    /// as-of time), so a model fitted on either table is the same model.
    pub fn from_partitions<E>(
        dataset: &mut Dataset,
        plan: &SnapshotPlan,
        set: &FeatureSet,
        partitions: usize,
        mut events_of: impl FnMut(usize) -> Result<Vec<churn_core::Event>, E>,
    ) -> Result<Table, E> {
        let learners: Vec<u32> = (0..dataset.learners.len() as u32).collect();
        let mut parts = Vec::with_capacity(partitions);
        // (learner, partition, row in the partition's table)
        let mut order: Vec<(u32, usize, usize)> = Vec::new();
        for k in 0..partitions {
            dataset.events = events_of(k)?;
            let grouped = Grouped::new(dataset).with_features(set);
            let examples: Vec<_> = grouped
                .examples(&learners, plan)
                .into_iter()
                .flatten()
                .filter(|e| e.churned.is_some())
                .collect();
            order.extend(
                examples
                    .iter()
                    .enumerate()
                    .map(|(row, e)| (e.learner, k, row)),
            );
            parts.push(Self::from_examples(
                grouped.dataset(),
                examples.into_iter(),
                set,
            ));
        }
        dataset.events = Vec::new();
        // Stable: a learner's rows are in one partition, in as-of order.
        order.sort_by_key(|&(learner, _, _)| learner);
        let mut table = Self::from_examples(dataset, std::iter::empty(), set);
        let (n, c) = (table.numeric_len(), table.categorical_len());
        for (_, k, row) in order {
            let part = &parts[k];
            table
                .numeric
                .extend_from_slice(&part.numeric[row * n..(row + 1) * n]);
            table
                .categorical
                .extend_from_slice(&part.categorical[row * c..(row + 1) * c]);
            table.labels.push(part.labels[row]);
            table.as_of.push(part.as_of[row]);
            table.ids.push(part.ids[row].clone());
        }
        Ok(table)
    }

    /// The labelled examples of `dataset` at prediction points (learner
    /// index, as-of time), with the plan's horizon, end of data and label.
    pub fn from_points(
        dataset: &mut Dataset,
        points: &[(u32, i64)],
        plan: &SnapshotPlan,
        set: &FeatureSet,
    ) -> Table {
        let grouped = Grouped::new(dataset).with_features(set);
        let examples = grouped.examples_at(points, plan).into_iter().flatten();
        Self::from_examples(grouped.dataset(), examples, set)
    }

    fn from_examples<'a>(
        dataset: &Dataset,
        examples: impl Iterator<Item = churn_features::Example<'a>>,
        set: &FeatureSet,
    ) -> Table {
        let mut table = Table {
            features: set
                .features()
                .into_iter()
                .map(|f| {
                    let kind = match f.kind {
                        churn_features::Kind::Numeric => Kind::Numeric,
                        churn_features::Kind::Categorical => Kind::Categorical,
                    };
                    (f.name, kind, f.description)
                })
                .collect(),
            ..Table::default()
        };
        for example in examples {
            let Some(churned) = example.churned else {
                continue;
            };
            table.numeric.extend_from_slice(&example.features.numeric);
            table.categorical.extend(
                example
                    .features
                    .categorical
                    .iter()
                    .map(|c| c.map(str::to_owned)),
            );
            table.labels.push(f64::from(u8::from(churned)));
            table.as_of.push(example.as_of);
            table
                .ids
                .push(dataset.learners[example.learner as usize].id.clone());
        }
        table
    }

    /// Row `i` as a model input.
    pub fn input<'a>(&'a self, i: usize, categories: &'a mut Vec<Option<&'a str>>) -> Input<'a> {
        let (n, c) = (self.numeric_len(), self.categorical_len());
        categories.clear();
        categories.extend(
            self.categorical[i * c..(i + 1) * c]
                .iter()
                .map(|v| v.as_deref()),
        );
        Input {
            numeric: &self.numeric[i * n..(i + 1) * n],
            categorical: categories,
        }
    }

    /// The distributions of every feature over `rows` and of `predictions`
    /// (the model's probabilities on those rows): the reference drift is
    /// measured against. Training uses the test rows, the latest as-of time it
    /// saw: cumulative features (tenure, lessons completed) grow with calendar
    /// time, so older rows would show drift that is only age.
    pub fn reference(
        &self,
        rows: &[usize],
        predictions: &[f64],
    ) -> churn_model::drift::TrainingReference {
        use churn_model::drift::{
            CategoricalReference, NumericReference, TrainingReference, category_shares, quantiles,
        };
        let (n, c) = (self.numeric_len(), self.categorical_len());
        let numeric = (0..n)
            .map(|j| {
                let values: Vec<f64> = rows.iter().map(|&i| self.numeric[i * n + j]).collect();
                let (quantiles, missing_share) = quantiles(&values);
                NumericReference {
                    feature: self.features[j].0.clone(),
                    quantiles,
                    missing_share,
                }
            })
            .collect();
        let categorical = (0..c)
            .map(|j| {
                let values: Vec<Option<&str>> = rows
                    .iter()
                    .map(|&i| self.categorical[i * c + j].as_deref())
                    .collect();
                CategoricalReference {
                    feature: self.features[n + j].0.clone(),
                    shares: category_shares(&values),
                }
            })
            .collect();
        TrainingReference {
            rows: rows.len(),
            predictions: quantiles(predictions).0,
            numeric,
            categorical,
        }
    }

    /// The schema with each categorical feature's vocabulary taken from `rows`.
    pub fn schema(&self, rows: &[usize]) -> Result<InputSchema, TrainError> {
        let (n, c) = (self.numeric_len(), self.categorical_len());
        let features = self
            .features
            .iter()
            .enumerate()
            .map(|(j, (name, kind, description))| {
                let mut categories: Vec<String> = if *kind == Kind::Categorical {
                    let k = j - n;
                    rows.iter()
                        .filter_map(|&i| self.categorical[i * c + k].clone())
                        .collect()
                } else {
                    Vec::new()
                };
                categories.sort();
                categories.dedup();
                churn_model::InputFeature {
                    name: name.clone(),
                    kind: *kind,
                    description: description.clone(),
                    categories,
                }
            })
            .collect();
        InputSchema::new(features).map_err(TrainError::Model)
    }
}

/// Row indexes of the three out-of-time parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
    pub test: Vec<usize>,
    /// The as-of times of each part, ascending.
    pub train_times: Vec<i64>,
    pub valid_times: Vec<i64>,
    pub test_times: Vec<i64>,
    /// The rows a refit at the test period would learn from: every row
    /// whose label is known by the first test time (the training and
    /// validation parts, and the purge gap between them), ascending. The
    /// backtest scores the refit procedure on them.
    pub refit: Vec<usize>,
}

/// How many labelled as-of times the validation and test parts take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSizes {
    /// The latest this many labelled as-of times are the test period.
    pub test_times: usize,
    /// The latest this many as-of times a horizon before the test period
    /// validate (early stopping, calibration).
    pub valid_times: usize,
}

impl Default for SplitSizes {
    /// DESIGN.md's split: one as-of time each.
    fn default() -> Self {
        SplitSizes {
            test_times: 1,
            valid_times: 1,
        }
    }
}

impl Split {
    /// A split of rows that have no as-of times (a plain table).
    pub fn untimed(train: Vec<usize>, valid: Vec<usize>, test: Vec<usize>) -> Split {
        let mut refit: Vec<usize> = train.iter().chain(&valid).copied().collect();
        refit.sort_unstable();
        Split {
            refit,
            train,
            valid,
            test,
            train_times: Vec::new(),
            valid_times: Vec::new(),
            test_times: Vec::new(),
        }
    }

    /// A readable account of the split for the model card.
    pub fn describe(&self, horizon: i64) -> serde_json::Value {
        serde_json::json!({
            "method": "out of time with purge gap: every training as-of t has t + horizon <= the first validation as-of; every validation as-of v has v + horizon <= the first test as-of",
            "horizon_days": horizon as f64 / churn_core::DAY_MS as f64,
            "train_as_of": times(&self.train_times),
            "valid_as_of": self.valid_times.first().map(|t| format_timestamp(*t)),
            "test_as_of": self.test_times.first().map(|t| format_timestamp(*t)),
            "valid_as_of_all": times(&self.valid_times),
            "test_as_of_all": times(&self.test_times),
            "rows": {"train": self.train.len(), "valid": self.valid.len(), "test": self.test.len()},
        })
    }
}

impl Split {
    /// One line for people: each part's rows and as-of times.
    pub fn account(&self, rows: usize) -> String {
        format!(
            "{rows} labelled examples: train {} (as-of {}), validation {} (as-of {}), test {} (as-of {}).",
            self.train.len(),
            span(&self.train_times),
            self.valid.len(),
            span(&self.valid_times),
            self.test.len(),
            span(&self.test_times),
        )
    }
}

/// "t" for one as-of time, "first to last, n times" for several.
fn span(times: &[i64]) -> String {
    match times {
        [] => String::new(),
        [one] => format_timestamp(*one),
        [first, .., last] => format!(
            "{} to {}, {} times",
            format_timestamp(*first),
            format_timestamp(*last),
            times.len()
        ),
    }
}

fn times(times: &[i64]) -> Vec<String> {
    times.iter().map(|t| format_timestamp(*t)).collect()
}

/// DESIGN.md's out-of-time split: test = the latest labelled as-of times
/// (`sizes.test_times` of them; one by default); validation = the latest
/// `sizes.valid_times` as-of times `v` with `v + horizon ≤` the first test
/// time; training = every as-of `t` with `t + horizon ≤` the first
/// validation time. No label window overlaps a later part.
pub fn out_of_time_split(
    as_of: &[i64],
    horizon: i64,
    sizes: SplitSizes,
) -> Result<Split, TrainError> {
    if sizes.test_times == 0 || sizes.valid_times == 0 {
        return Err(TrainError::Split(
            "the test and validation parts need at least one as-of time each".into(),
        ));
    }
    let mut times: Vec<i64> = as_of.to_vec();
    times.sort_unstable();
    times.dedup();
    if times.is_empty() {
        return Err(TrainError::Split("no labelled examples".into()));
    }
    let test_times = times[times.len().saturating_sub(sizes.test_times)..].to_vec();
    let test_time = test_times[0];
    let before_test: Vec<i64> = times
        .iter()
        .copied()
        .filter(|&t| t + horizon <= test_time)
        .collect();
    if before_test.is_empty() {
        return Err(TrainError::Split(format!(
            "no as-of time lies a horizon before the test as-of {}: take more snapshots (--from earlier or --every shorter)",
            format_timestamp(test_time)
        )));
    }
    let valid_times = before_test[before_test.len().saturating_sub(sizes.valid_times)..].to_vec();
    let valid_time = valid_times[0];
    let train_times: Vec<i64> = times
        .iter()
        .copied()
        .filter(|&t| t + horizon <= valid_time)
        .collect();
    if train_times.is_empty() {
        return Err(TrainError::Split(format!(
            "no as-of time lies a horizon before the validation as-of {}: take more snapshots",
            format_timestamp(valid_time)
        )));
    }
    let rows_at = |keep: &dyn Fn(i64) -> bool| -> Vec<usize> {
        (0..as_of.len()).filter(|&i| keep(as_of[i])).collect()
    };
    Ok(Split {
        train: rows_at(&|t| t + horizon <= valid_time),
        valid: rows_at(&|t| valid_times.binary_search(&t).is_ok()),
        test: rows_at(&|t| t >= test_time),
        refit: rows_at(&|t| t + horizon <= test_time),
        train_times,
        valid_times,
        test_times,
    })
}

/// The rolling-origin backtest: `folds` out-of-time splits whose test
/// periods are the latest `folds` blocks of `sizes.test_times` labelled
/// as-of times, oldest fold first. Each fold is [`out_of_time_split`] of the
/// rows up to the end of its test period, so each has the purge gaps of the
/// single split, and the newest fold is that single split.
pub fn backtest_splits(
    as_of: &[i64],
    horizon: i64,
    sizes: SplitSizes,
    folds: usize,
) -> Result<Vec<Split>, TrainError> {
    if folds == 0 {
        return Err(TrainError::Split(
            "a backtest needs at least one fold".into(),
        ));
    }
    let mut times: Vec<i64> = as_of.to_vec();
    times.sort_unstable();
    times.dedup();
    let needed = folds * sizes.test_times;
    if times.len() < needed {
        return Err(TrainError::Split(format!(
            "{folds} backtest folds of {} test as-of times need {needed} labelled as-of times; the data has {}",
            sizes.test_times,
            times.len()
        )));
    }
    (0..folds)
        .rev()
        .map(|fold| {
            let last = times[times.len() - 1 - fold * sizes.test_times];
            let rows: Vec<usize> = (0..as_of.len()).filter(|&i| as_of[i] <= last).collect();
            let kept: Vec<i64> = rows.iter().map(|&i| as_of[i]).collect();
            let split = out_of_time_split(&kept, horizon, sizes).map_err(|e| match e {
                TrainError::Split(why) => TrainError::Split(format!(
                    "backtest fold testing up to {}: {why}",
                    format_timestamp(last)
                )),
                other => other,
            })?;
            let back = |part: Vec<usize>| part.into_iter().map(|i| rows[i]).collect();
            Ok(Split {
                train: back(split.train),
                valid: back(split.valid),
                test: back(split.test),
                refit: back(split.refit),
                ..split
            })
        })
        .collect()
}

/// The rolling-origin backtest of a plain table split by a time column:
/// `folds` splits, oldest first. The newest is [`holdout`]'s out-of-time
/// split (test = the latest `share` of `rows`, validation = the `share`
/// before it, training the rest); each older fold does the same on the rows
/// before the newer fold's test period, with test and validation parts of the
/// newest fold's sizes, so the test periods tile back in time.
pub fn time_holdout_folds(
    rows: &[usize],
    labels: &[f64],
    times: &[i64],
    share: f64,
    folds: usize,
) -> Result<Vec<Split>, TrainError> {
    let mut splits: Vec<Split> = Vec::with_capacity(folds);
    let mut before: Vec<usize> = rows.to_vec();
    for fold in 0..folds {
        // The newest fold: `share` each; older ones: the newest fold's sizes.
        let (test_share, valid_share) = match splits.first() {
            None => (share, share / (1.0 - share)),
            Some(newest) => {
                let n = before.len() as f64;
                let test = newest.test.len() as f64;
                (test / n, newest.valid.len() as f64 / (n - test))
            }
        };
        let (rest, test) = holdout(&before, labels, Some(times), test_share, 0)?;
        let (train, valid) = holdout(&rest, labels, Some(times), valid_share, 0)?;
        for (part, rows) in [
            ("training", &train),
            ("validation", &valid),
            ("test", &test),
        ] {
            let positives = rows.iter().filter(|&&i| labels[i] == 1.0).count();
            if positives == 0 || positives == rows.len() {
                return Err(TrainError::Split(format!(
                    "backtest fold {fold} back: the {part} part ({} rows) has a single label",
                    rows.len()
                )));
            }
        }
        splits.push(Split::untimed(train, valid, test));
        before = rest;
    }
    splits.reverse();
    Ok(splits)
}

/// Splits `rows` of a plain table into (kept, held out), holding out about
/// `share` of them: the latest by `times` when given (rows sharing a time
/// stay together, so nothing held out is older than anything kept), else a
/// random draw within each label (stratified) from `seed`.
pub fn holdout(
    rows: &[usize],
    labels: &[f64],
    times: Option<&[i64]>,
    share: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), TrainError> {
    use rand::seq::SliceRandom;
    use rand::{SeedableRng, rngs::Xoshiro256PlusPlus};
    let target = ((rows.len() as f64) * share).round() as usize;
    if target == 0 || target >= rows.len() {
        return Err(TrainError::Split(format!(
            "{} rows cannot be split {:.0}% / {:.0}%",
            rows.len(),
            100.0 * (1.0 - share),
            100.0 * share
        )));
    }
    let (kept, held): (Vec<usize>, Vec<usize>) = match times {
        Some(times) => {
            let mut sorted: Vec<i64> = rows.iter().map(|&i| times[i]).collect();
            sorted.sort_unstable();
            let cut = sorted[sorted.len() - target];
            rows.iter().partition(|&&i| times[i] < cut)
        }
        None => {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut held = Vec::new();
            for class in [0.0, 1.0] {
                let mut members: Vec<usize> = rows
                    .iter()
                    .copied()
                    .filter(|&i| labels[i] == class)
                    .collect();
                members.shuffle(&mut rng);
                let take = ((members.len() as f64) * share).round() as usize;
                held.extend_from_slice(&members[..take]);
            }
            held.sort_unstable();
            let kept = rows
                .iter()
                .copied()
                .filter(|i| held.binary_search(i).is_err())
                .collect();
            (kept, held)
        }
    };
    if kept.is_empty() || held.is_empty() {
        return Err(TrainError::Split(
            "every row has the same time: nothing is earlier than the held-out part".into(),
        ));
    }
    Ok((kept, held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_core::DAY_MS;

    #[test]
    fn a_table_built_by_partitions_of_learners_is_the_table_built_whole() {
        let params = churn_sim::SimParams {
            learners: 600,
            days: 120,
            seed: 5,
            ..churn_sim::SimParams::default()
        }
        .check()
        .expect("valid parameters");
        let mut dataset = churn_sim::simulate(&params, &|_| {}).dataset;
        let plan = churn_features::SnapshotSpec::every_14_days()
            .resolve(&dataset)
            .expect("a plan");
        let set = FeatureSet::default();
        let events = dataset.events.clone();
        let whole = Table::from_dataset(&mut dataset, &plan, &set);
        assert!(whole.rows() > 500, "{} rows", whole.rows());
        for partitions in [1u32, 3, 7] {
            let by_parts = Table::from_partitions(
                &mut dataset,
                &plan,
                &set,
                partitions as usize,
                |k| -> Result<_, std::convert::Infallible> {
                    Ok(events
                        .iter()
                        .filter(|e| e.learner % partitions == k as u32)
                        .copied()
                        .collect())
                },
            )
            .expect("infallible");
            assert_eq!(by_parts.ids, whole.ids, "{partitions} partitions");
            assert_eq!(by_parts.as_of, whole.as_of);
            assert_eq!(by_parts.labels, whole.labels);
            assert_eq!(by_parts.categorical, whole.categorical);
            // Bits: missing features are NaN.
            let bits = |t: &Table| t.numeric.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&by_parts), bits(&whole));
            assert_eq!(by_parts.features, whole.features);
        }
    }

    #[test]
    fn no_label_window_overlaps_a_later_part() {
        let as_of: Vec<i64> = (0..10).flat_map(|k| [k * 14 * DAY_MS; 3]).collect();
        let h = 30 * DAY_MS;
        let split = out_of_time_split(&as_of, h, SplitSizes::default()).unwrap();
        assert_eq!(split.test_times, [9 * 14 * DAY_MS]);
        // 7·14 + 30 > 9·14 = 126 days, 6·14 + 30 ≤ 126: validation at day 84.
        assert_eq!(split.valid_times, [6 * 14 * DAY_MS]);
        // 4·14 + 30 > 84, 3·14 + 30 ≤ 84: training up to day 42.
        assert_eq!(split.train_times.last(), Some(&(3 * 14 * DAY_MS)));
        for &i in &split.train {
            assert!(as_of[i] + h <= split.valid_times[0]);
        }
        assert_eq!((split.valid.len(), split.test.len()), (3, 3));
        assert!(out_of_time_split(&as_of[..6], h, SplitSizes::default()).is_err());
    }

    #[test]
    fn backtest_folds_roll_the_test_period_back_and_keep_the_purge_gaps() {
        // As-of times every 14 days, three rows each, shuffled.
        let mut as_of: Vec<i64> = (0..12).flat_map(|k| [k * 14 * DAY_MS; 3]).collect();
        as_of.reverse();
        let h = 30 * DAY_MS;
        let folds = backtest_splits(&as_of, h, SplitSizes::default(), 3).unwrap();
        assert_eq!(folds.len(), 3);
        let single = out_of_time_split(&as_of, h, SplitSizes::default()).unwrap();
        assert_eq!(folds[2], single, "the newest fold is the single split");
        for (f, fold) in folds.iter().enumerate() {
            let test_day = (9 + f as i64) * 14 * DAY_MS;
            assert_eq!(fold.test_times, [test_day]);
            assert!(fold.test.iter().all(|&i| as_of[i] == test_day));
            assert_eq!(fold.test.len(), 3);
            for &i in &fold.valid {
                assert!(as_of[i] + h <= test_day);
            }
            for &i in &fold.train {
                assert!(as_of[i] + h <= fold.valid_times[0]);
            }
            // A refit at the test time learns from every as-of t with
            // t + 30 days <= it: test day 14·(9+f) keeps days 0..=14·(6+f),
            // 7 + f times of three rows: training, the two purged times and
            // the validation time.
            let expected: Vec<usize> = (0..as_of.len())
                .filter(|&i| as_of[i] <= (6 + f as i64) * 14 * DAY_MS)
                .collect();
            assert_eq!(fold.refit, expected);
            assert_eq!(fold.refit.len(), 3 * (7 + f));
            assert!(fold.refit.len() > fold.train.len() + fold.valid.len());
        }
        assert!(backtest_splits(&as_of, h, SplitSizes::default(), 13).is_err());
        let message = match backtest_splits(&as_of[..9], h, SplitSizes::default(), 3) {
            Err(TrainError::Split(why)) => why,
            other => panic!("too few times: {other:?}"),
        };
        assert!(message.contains("backtest fold"), "{message}");
    }

    #[test]
    fn plain_table_folds_tile_the_test_periods_back_in_time() {
        // 100 rows, one per day, labels alternating.
        let rows: Vec<usize> = (0..100).collect();
        let labels: Vec<f64> = (0..100).map(|i| f64::from(i % 2)).collect();
        let times: Vec<i64> = (0..100).rev().collect();
        let folds = time_holdout_folds(&rows, &labels, &times, 0.2, 3).unwrap();
        let (rest, test) = holdout(&rows, &labels, Some(&times), 0.2, 0).unwrap();
        let (train, valid) = holdout(&rest, &labels, Some(&times), 0.25, 0).unwrap();
        assert_eq!(
            (&folds[2].train, &folds[2].valid, &folds[2].test),
            (&train, &valid, &test)
        );
        let span = |part: &[usize]| {
            let t: Vec<i64> = part.iter().map(|&i| times[i]).collect();
            (*t.iter().min().unwrap(), *t.iter().max().unwrap())
        };
        for pair in folds.windows(2) {
            let (older, newer) = (&pair[0], &pair[1]);
            assert_eq!(older.test.len(), newer.test.len());
            assert_eq!(older.valid.len(), newer.valid.len());
            // The older test period ends just before the newer one starts.
            assert_eq!(span(&older.test).1 + 1, span(&newer.test).0);
            for part in [&older.train, &older.valid] {
                assert!(span(part).1 < span(&older.test).0);
            }
            // No purge gap in a plain table: the refit rows are everything
            // before the test period.
            let mut before: Vec<usize> = older.train.iter().chain(&older.valid).copied().collect();
            before.sort_unstable();
            assert_eq!(older.refit, before);
            assert_eq!(span(&older.refit).1 + 1, span(&older.test).0);
        }
        assert!(time_holdout_folds(&rows, &labels, &times, 0.2, 5).is_err());
    }

    #[test]
    fn a_test_period_of_several_times_keeps_the_purge_gaps() {
        let as_of: Vec<i64> = (0..20).flat_map(|k| [k * 7 * DAY_MS; 2]).collect();
        let h = 30 * DAY_MS;
        let sizes = SplitSizes {
            test_times: 4,
            valid_times: 2,
        };
        let split = out_of_time_split(&as_of, h, sizes).unwrap();
        // Test: days 112..133; validation: the two latest v with v + 30 ≤ 112
        // (days 70 and 77; 84 + 30 > 112); training: t + 30 ≤ 70 (up to day 35).
        assert_eq!(split.test_times, [112, 119, 126, 133].map(|d| d * DAY_MS));
        assert_eq!(split.valid_times, [70, 77].map(|d| d * DAY_MS));
        assert_eq!(split.train_times.last(), Some(&(35 * DAY_MS)));
        assert_eq!((split.test.len(), split.valid.len()), (8, 4));
        let zero = SplitSizes {
            test_times: 0,
            valid_times: 1,
        };
        assert!(out_of_time_split(&as_of, h, zero).is_err());
    }

    #[test]
    fn holdout_by_time_keeps_ties_together_and_random_holdout_is_stratified() {
        let rows: Vec<usize> = (0..10).collect();
        let labels = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let times = [5, 1, 2, 9, 9, 3, 4, 6, 7, 8];
        let (kept, held) = holdout(&rows, &labels, Some(&times), 0.2, 1).unwrap();
        assert_eq!(held, vec![3, 4], "the two latest");
        assert!(kept.iter().all(|&i| times[i] < 9));
        let times = [1, 1, 1, 1, 1, 1, 1, 1, 2, 2];
        let (_, held) = holdout(&rows, &labels, Some(&times), 0.1, 1).unwrap();
        assert_eq!(
            held,
            vec![8, 9],
            "a tie at the cut goes with the later part"
        );

        let labels: Vec<f64> = (0..1000).map(|i| f64::from(u8::from(i % 4 == 0))).collect();
        let rows: Vec<usize> = (0..1000).collect();
        let (kept, held) = holdout(&rows, &labels, None, 0.2, 7).unwrap();
        assert_eq!(held.len(), 200);
        assert_eq!(
            held.iter().filter(|&&i| labels[i] == 1.0).count(),
            50,
            "25% positives held"
        );
        assert_eq!(kept.len() + held.len(), 1000);
        assert_eq!(
            holdout(&rows, &labels, None, 0.2, 7).unwrap().1,
            held,
            "seeded"
        );
        assert_ne!(holdout(&rows, &labels, None, 0.2, 8).unwrap().1, held);
        assert!(holdout(&rows[..2], &labels, None, 0.2, 7).is_err());
    }
}
