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

impl BatchScorer {
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
}
