//! One model applied to the learners of a dataset at prediction points:
//! what `churn predict` and `churn explain` share.

use churn_core::{DAY_MS, Dataset, LabelDefinition};
use churn_features::{Example, Grouped, SnapshotSpec};
use rayon::prelude::*;

use crate::artifact::Artifact;
use crate::predictions_csv::{PredictionRow, Tally, line};
use crate::{Answer, Input, ModelError, Policy, RiskBands};

/// A model, the policy that suggests actions, and when and how it scores.
pub struct BatchScorer {
    pub artifact: Artifact,
    pub policy: Box<dyn Policy>,
    pub bands: RiskBands,
    /// The as-of time of [`Self::all_at_as_of`].
    pub as_of: i64,
    /// Learners without activity for this long are gone, not scored.
    pub horizon: i64,
    /// Who is still there to be scored follows the label the model learned.
    pub label: LabelDefinition,
}

/// One scored prediction point: its row of the predictions file, rendered
/// (a few hundred bytes, where the answer behind it takes about 1.5 KiB).
pub struct ScoredLine {
    pub learner: u32,
    pub probability: f64,
    pub line: Box<[u8]>,
}

/// Bytes kept per scored learner until the file is written: the line and
/// its place.
pub const KEPT_PER_LEARNER: u64 = 512;

/// What [`BatchScorer::open`] needs besides the data.
pub struct ScorerSpec<'a> {
    /// An artifact directory, or NAME / NAME@VERSION under `models`.
    pub model: &'a str,
    pub models: &'a std::path::Path,
    /// The playbook (default: the built-in one).
    pub playbook: Option<&'a std::path::Path>,
    /// An exported uplift policy, which replaces the playbook's suggestions.
    pub policy: Option<&'a std::path::Path>,
    /// Overrides the card's label horizon (default: the card's, else 30 days).
    pub horizon: Option<i64>,
    /// The as-of time (default: the data's last event).
    pub as_of: Option<i64>,
}

impl BatchScorer {
    /// The model (it must read churn's features), the playbook or uplift
    /// policy checked against it, the horizon and the as-of time.
    pub fn open(spec: &ScorerSpec, last_event: Option<i64>) -> Result<BatchScorer, ModelError> {
        let artifact = crate::artifact::load_feature_model(spec.model, spec.models)?;
        let playbook = crate::playbook::load(spec.playbook, artifact.model.schema())?;
        let bands = playbook.bands();
        let policy: Box<dyn Policy> = match spec.policy {
            Some(dir) => {
                let policy = crate::uplift_policy::load(dir)?;
                policy.check_inputs(artifact.model.schema())?;
                Box::new(policy)
            }
            None => Box::new(playbook),
        };
        let horizon = match (spec.horizon, artifact.card.training.horizon()) {
            (Some(horizon), _) => horizon,
            (None, Some(text)) => churn_core::parse_duration(text).map_err(|e| {
                ModelError::Invalid(format!(
                    "{}: training.horizon {text:?}: {e}",
                    artifact.dir.display()
                ))
            })?,
            (None, None) => 30 * DAY_MS,
        };
        let label = artifact.card.training.label();
        let as_of = spec
            .as_of
            .or(last_event)
            .ok_or_else(|| ModelError::Input("the data has no events: give --as-of".into()))?;
        Ok(BatchScorer {
            artifact,
            policy,
            bands,
            as_of,
            horizon,
            label,
        })
    }

    /// Every learner of `dataset` at the as-of time.
    pub fn all_at_as_of(&self, dataset: &Dataset) -> Vec<(u32, i64)> {
        (0..dataset.learners.len() as u32)
            .map(|l| (l, self.as_of))
            .collect()
    }

    /// The answer for one example, with the top `top_k` factors.
    pub fn answer(&self, example: &Example<'_>, top_k: usize) -> Result<Answer, ModelError> {
        crate::answer(
            &self.artifact.model,
            &self.policy,
            self.bands,
            &Input::from(&example.features),
            top_k,
        )
    }

    /// The example at each point, `None` where the learner was not there.
    pub fn found_at<'d>(
        &self,
        dataset: &'d mut Dataset,
        points: &[(u32, i64)],
    ) -> Result<(&'d Dataset, Vec<Option<Example<'d>>>), ModelError> {
        // No label is read: the data ends at the latest point.
        let latest = points.iter().map(|p| p.1).max().unwrap_or(self.as_of);
        let plan = SnapshotSpec {
            from: Some(latest),
            to: Some(latest),
            every: DAY_MS,
            horizon: self.horizon,
            data_end: Some(latest),
            label: self.label,
        }
        .resolve_for_span(Some((latest, latest)))
        .map_err(|e| ModelError::Input(e.to_string()))?;
        // The model's custom event types, calendar and learner attributes,
        // read from this data by name (what it lacks is missing, as over HTTP).
        let grouped =
            Grouped::new(dataset).with_features(self.artifact.card.training.feature_set());
        let found = grouped.examples_at(points, &plan);
        Ok((grouped.dataset(), found))
    }

    /// The examples (active learners) among `learners` at the as-of time.
    pub fn examples<'d>(
        &self,
        dataset: &'d mut Dataset,
        learners: &[u32],
    ) -> Result<(&'d Dataset, Vec<Example<'d>>), ModelError> {
        let points: Vec<(u32, i64)> = learners.iter().map(|&l| (l, self.as_of)).collect();
        let (dataset, found) = self.found_at(dataset, &points)?;
        Ok((dataset, found.into_iter().flatten().collect()))
    }

    /// Scores `points` of `dataset`: each point's row of the predictions
    /// file, rendered, or `None` where the learner was not there; and the
    /// counts of the summary. `progress` hears each scored point.
    pub fn score_points(
        &self,
        dataset: &mut Dataset,
        points: &[(u32, i64)],
        top_k: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(Vec<Option<ScoredLine>>, Tally), ModelError> {
        let (dataset, found) = self.found_at(dataset, points)?;
        let schema = self.artifact.model.schema();
        let scored: Vec<Option<(ScoredLine, Tally)>> = found
            .par_iter()
            .map(|example| {
                let Some(e) = example else { return Ok(None) };
                let answer = self.answer(e, top_k)?;
                progress(1);
                let row = PredictionRow::new(
                    &dataset.learners[e.learner as usize].id,
                    e.as_of,
                    &answer,
                    schema,
                    &Input::from(&e.features),
                );
                let mut tally = Tally::default();
                tally.add(&row);
                let line = line(&row, top_k).map_err(|e| ModelError::Input(e.to_string()))?;
                Ok(Some((
                    ScoredLine {
                        learner: e.learner,
                        probability: answer.churn_probability,
                        line: line.into_boxed_slice(),
                    },
                    tally,
                )))
            })
            .collect::<Result<_, ModelError>>()?;
        let mut tally = Tally::default();
        let lines = scored
            .into_iter()
            .map(|found| {
                found.map(|(line, one)| {
                    tally.merge(one);
                    line
                })
            })
            .collect();
        Ok((lines, tally))
    }

    /// [`Self::score_points`] a partition of learners at a time, for events
    /// larger than memory: `events_of(k)` reads partition k's events into
    /// `dataset`, and each line goes back to its point's place, so the
    /// result reads as if scored in one pass.
    pub fn score_in_partitions<E: From<ModelError>>(
        &self,
        dataset: &mut Dataset,
        points: &[(u32, i64)],
        top_k: usize,
        partitions: Partitions<'_, E>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(Vec<Option<ScoredLine>>, Tally), E> {
        let mut scored: Vec<Option<ScoredLine>> = Vec::new();
        scored.resize_with(points.len(), || None);
        let mut tally = Tally::default();
        for k in 0..partitions.count {
            let (places, mine): (Vec<usize>, Vec<(u32, i64)>) = points
                .iter()
                .enumerate()
                .filter(|(_, p)| (partitions.partition_of)(p.0) == k)
                .map(|(i, p)| (i, *p))
                .unzip();
            dataset.events = (partitions.events_of)(k)?;
            let (lines, counts) = self.score_points(dataset, &mine, top_k, progress)?;
            tally.merge(counts);
            for (place, line) in places.into_iter().zip(lines) {
                scored[place] = line;
            }
        }
        dataset.events = Vec::new();
        Ok((scored, tally))
    }
}

/// Learners split into partitions whose events are read one at a time.
pub struct Partitions<'a, E> {
    pub count: usize,
    pub partition_of: &'a dyn Fn(u32) -> usize,
    pub events_of: &'a dyn Fn(usize) -> Result<Vec<churn_core::Event>, E>,
}
