//! `churn predict` and `churn explain`: a model and the playbook applied to
//! the learners of a data directory at one as-of time.

use anyhow::{Context, Result, bail};
use churn_core::{DAY_MS, Dataset, format_timestamp, parse_timestamp};
use churn_features::{Example, Grouped, SnapshotSpec};
use churn_model::artifact::Artifact;
use churn_model::predictions_csv::{PredictionRow, Tally};
use churn_model::{Answer, Input, InputSchema, Policy, RiskBands};
use rayon::prelude::*;

use crate::cli::{ExplainArgs, ModelSource, PredictArgs, ScoringArgs};
use crate::flags::{duration, reference_time};
use crate::loading::{load_and_report, load_partitioned_and_report};
use crate::output::write_file;
use crate::ui::{Ui, print_text, say};

/// Loads an artifact that reads churn's own features.
pub fn load_feature_model(source: &ModelSource) -> Result<Artifact> {
    let dir = churn_model::artifact::resolve(&source.model, &source.models)?;
    let artifact = churn_model::artifact::load(&dir)?;
    let expected = InputSchema::churn_features_of(artifact.card.training.feature_set());
    let expected: Vec<_> = expected.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    artifact
        .model
        .schema()
        .require(&expected)
        .with_context(|| format!("{} was not trained on churn's features", dir.display()))?;
    Ok(artifact)
}

/// The model's label horizon: the card's, else `--horizon`, else 30 days.
fn horizon(artifact: &Artifact, flag: &Option<String>) -> Result<i64> {
    if let Some(text) = flag {
        return duration("--horizon", text);
    }
    match artifact.card.training.horizon() {
        Some(text) => duration(
            &format!("{}: training.horizon", artifact.dir.display()),
            text,
        ),
        None => Ok(30 * DAY_MS),
    }
}

/// Everything `predict` and `explain` share: model, playbook, data, as-of time.
struct Scoring {
    artifact: Artifact,
    policy: Box<dyn Policy>,
    bands: RiskBands,
    as_of: i64,
    horizon: i64,
    /// Who is still there to be scored follows the label the model learned.
    label: churn_core::LabelDefinition,
}

impl Scoring {
    fn open(ui: &Ui, args: &ScoringArgs) -> Result<(Self, Dataset)> {
        let dataset =
            load_and_report(ui, &args.data, &args.work, reference_time(&args.now)?)?.dataset;
        let scoring = Self::new(args, dataset.last_event_time())?;
        Ok((scoring, dataset))
    }

    /// The model, playbook and as-of time (`--as-of`, else `last_event`).
    fn new(args: &ScoringArgs, last_event: Option<i64>) -> Result<Self> {
        let artifact = load_feature_model(&args.source)?;
        let playbook =
            churn_model::playbook::load(args.playbook.as_deref(), artifact.model.schema())?;
        let bands = playbook.bands();
        let policy: Box<dyn Policy> = match &args.policy {
            Some(dir) => {
                let policy = churn_model::uplift_policy::load(dir)?;
                policy.check_inputs(artifact.model.schema())?;
                Box::new(policy)
            }
            None => Box::new(playbook),
        };
        let horizon = horizon(&artifact, &args.horizon)?;
        let label = artifact.card.training.label();
        let as_of = match &args.as_of {
            Some(text) => parse_timestamp(text).with_context(|| format!("--as-of {text:?}"))?,
            None => last_event.context("the data has no events: give --as-of")?,
        };
        Ok(Scoring {
            artifact,
            policy,
            bands,
            as_of,
            horizon,
            label,
        })
    }

    /// Scores `points` of `dataset`: each point's row of the predictions
    /// file, rendered, or `None` where the learner was not there; and the
    /// counts of the summary.
    fn score_points(
        &self,
        dataset: &mut Dataset,
        points: &[(u32, i64)],
        top_k: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(Vec<Option<ScoredLine>>, Tally)> {
        let (dataset, found) = self.found_at(dataset, points)?;
        let schema = self.artifact.model.schema();
        let scored: Vec<Option<(ScoredLine, Tally)>> = found
            .par_iter()
            .map(|example| {
                let Some(e) = example else { return Ok(None) };
                let answer = answer(self, e, top_k)?;
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
                let line = churn_model::predictions_csv::line(&row, top_k)?;
                Ok(Some((
                    ScoredLine {
                        learner: e.learner,
                        probability: answer.churn_probability,
                        line: line.into_boxed_slice(),
                    },
                    tally,
                )))
            })
            .collect::<Result<_>>()?;
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

    /// The examples (active learners) among `learners` at the as-of time.
    fn examples<'d>(
        &self,
        dataset: &'d mut Dataset,
        learners: &[u32],
    ) -> Result<(&'d Dataset, Vec<Example<'d>>)> {
        let points: Vec<(u32, i64)> = learners.iter().map(|&l| (l, self.as_of)).collect();
        let (dataset, examples, _) = self.examples_at(dataset, &points)?;
        Ok((dataset, examples))
    }

    /// Every learner of `dataset` at the as-of time.
    fn all_at_as_of(&self, dataset: &Dataset) -> Vec<(u32, i64)> {
        (0..dataset.learners.len() as u32)
            .map(|l| (l, self.as_of))
            .collect()
    }

    /// The examples at prediction points (learner, as-of), and how many
    /// points had none (the learner was not there).
    fn examples_at<'d>(
        &self,
        dataset: &'d mut Dataset,
        points: &[(u32, i64)],
    ) -> Result<(&'d Dataset, Vec<Example<'d>>, usize)> {
        let (dataset, found) = self.found_at(dataset, points)?;
        let missing = found.iter().filter(|e| e.is_none()).count();
        Ok((dataset, found.into_iter().flatten().collect(), missing))
    }

    /// The example at each point, `None` where the learner was not there.
    fn found_at<'d>(
        &self,
        dataset: &'d mut Dataset,
        points: &[(u32, i64)],
    ) -> Result<(&'d Dataset, Vec<Option<Example<'d>>>)> {
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
        .resolve_for_span(Some((latest, latest)))?;
        // The model's custom event types, calendar and learner attributes,
        // read from this data by name (what it lacks is missing, as over HTTP).
        let grouped =
            Grouped::new(dataset).with_features(self.artifact.card.training.feature_set());
        let found = grouped.examples_at(points, &plan);
        Ok((grouped.dataset(), found))
    }
}

/// One scored prediction point: its row of the predictions file, rendered
/// (a few hundred bytes, where the answer behind it takes about 1.5 KiB).
struct ScoredLine {
    learner: u32,
    probability: f64,
    line: Box<[u8]>,
}

/// Bytes kept per scored learner until the file is written: the line and
/// its place.
const KEPT_PER_LEARNER: u64 = 512;

fn answer(scoring: &Scoring, example: &Example<'_>, top_k: usize) -> Result<Answer> {
    let input = Input::from(&example.features);
    Ok(churn_model::answer(
        &scoring.artifact.model,
        &scoring.policy,
        scoring.bands,
        &input,
        top_k,
    )?)
}

/// What [`predict`] scored, for a caller that shows an example.
pub struct Scored {
    /// The as-of time of every prediction.
    pub as_of: i64,
    /// The learner with the highest churn probability, and that probability.
    pub riskiest: Option<(String, f64)>,
}

pub fn predict(ui: &Ui, args: &PredictArgs) -> Result<Scored> {
    if args.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let (scoring, mut dataset, partitioned) = match args.out_of_core.split(KEPT_PER_LEARNER) {
        None => {
            let (scoring, dataset) = Scoring::open(ui, &args.scoring)?;
            (scoring, dataset, None)
        }
        Some(split) => {
            let work = &args.scoring.work;
            let spill_in = args.out_of_core.spill.as_deref().unwrap_or(work);
            let now = reference_time(&args.scoring.now)?;
            let mut part =
                load_partitioned_and_report(ui, &args.scoring.data, work, now, split, spill_in)?;
            let scoring = Scoring::new(&args.scoring, part.event_span.map(|span| span.1))?;
            let dataset = std::mem::take(&mut part.dataset);
            (scoring, dataset, Some(part))
        }
    };
    let points = match &args.points {
        Some(file) => {
            crate::commands::features::read_points_reporting(file, &dataset, &args.scoring.work)?
                .pairs
        }
        None => scoring.all_at_as_of(&dataset),
    };
    let bar = ui.progress(points.len() as u64, "scoring");
    let progress = |n| bar.inc(n);
    let (scored, tally) = match &partitioned {
        None => scoring.score_points(&mut dataset, &points, args.top_k, &progress)?,
        Some(part) => {
            // Each partition scores its learners' points; the rows go back to
            // the points' places, so the file reads as in one pass.
            let mut scored: Vec<Option<ScoredLine>> = Vec::new();
            scored.resize_with(points.len(), || None);
            let mut tally = Tally::default();
            for k in 0..part.partitions() {
                let (places, mine): (Vec<usize>, Vec<(u32, i64)>) = points
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| part.partition_of(p.0) == k)
                    .map(|(i, p)| (i, *p))
                    .unzip();
                dataset.events = part.events_of(k)?;
                let (lines, counts) =
                    scoring.score_points(&mut dataset, &mine, args.top_k, &progress)?;
                tally.merge(counts);
                for (place, line) in places.into_iter().zip(lines) {
                    scored[place] = line;
                }
            }
            dataset.events = Vec::new();
            (scored, tally)
        }
    };
    bar.finish_and_clear();
    let missing = scored.iter().filter(|s| s.is_none()).count();
    if args.points.is_some() && missing > 0 {
        say!(
            "{missing} of {} points not scored: the learner was not there (not signed up, gone or finished)",
            points.len()
        )?;
    }
    let scored: Vec<ScoredLine> = scored.into_iter().flatten().collect();
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        churn_core::create_dir_all(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_file(&args.out, |w| {
        let mut header = csv::Writer::from_writer(&mut *w);
        header.write_record(churn_model::predictions_csv::header(args.top_k))?;
        header.flush()?;
        drop(header);
        for s in &scored {
            std::io::Write::write_all(w, &s.line)?;
        }
        Ok(())
    })?;

    say!(
        "{}@{} at {}: {} active learners scored ({} of {} not active: not yet signed up, or gone for {} days)",
        scoring.artifact.card.name,
        scoring.artifact.card.version,
        format_timestamp(scoring.as_of),
        scored.len(),
        dataset.learners.len() - scored.len(),
        dataset.learners.len(),
        scoring.horizon / DAY_MS,
    )?;
    say!("{}", tally.text(&scoring.policy.id()))?;
    say!("wrote {}", args.out.display())?;
    let riskiest = scored
        .iter()
        .max_by(|a, b| a.probability.total_cmp(&b.probability))
        .map(|s| {
            (
                dataset.learners[s.learner as usize].id.clone(),
                s.probability,
            )
        });
    Ok(Scored {
        as_of: scoring.as_of,
        riskiest,
    })
}

pub fn explain(ui: &Ui, args: &ExplainArgs) -> Result<()> {
    let (scoring, mut dataset) = Scoring::open(ui, &args.scoring)?;
    let Some(index) = dataset.learners.iter().position(|l| l.id == args.learner) else {
        bail!(
            "--learner {:?}: no such learner in {}",
            args.learner,
            args.scoring.data.display()
        );
    };
    let as_of = scoring.as_of;
    let horizon = scoring.horizon;
    let (dataset, examples) = scoring.examples(&mut dataset, &[index as u32])?;
    let Some(example) = examples.into_iter().next() else {
        let signup = dataset.learners[index].signup_at;
        bail!(
            "learner {} is not active at {}: {}",
            args.learner,
            format_timestamp(as_of),
            if signup > as_of {
                format!("signed up later, at {}", format_timestamp(signup))
            } else {
                format!(
                    "no activity in the {} days before, or cancelled",
                    horizon / DAY_MS
                )
            }
        );
    };
    let all = scoring.artifact.model.schema().features.len();
    let a = answer(&scoring, &example, all)?;
    let explanation = churn_model::explanation::Explanation {
        learner_id: &args.learner,
        as_of,
        card: &scoring.artifact.card,
        model: &scoring.artifact.model,
        answer: &a,
        input: &Input::from(&example.features),
    };
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&explanation.json(args.top_k)?)?
        )?;
    } else {
        print_text(&explanation.text(args.top_k))?;
    }
    Ok(())
}
