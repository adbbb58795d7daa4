//! `churn predict` and `churn explain`: a model and the playbook applied to
//! the learners of a data directory at one as-of time.

use anyhow::{Context, Result, bail};
use churn_core::{DAY_MS, Dataset, format_timestamp, parse_timestamp};
use churn_model::artifact::Artifact;
use churn_model::batch::{BatchScorer, KEPT_PER_LEARNER, ScoredLine};
use churn_model::predictions_csv::Tally;
use churn_model::{Input, InputSchema, Policy};

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

/// The model, playbook and as-of time of `predict` and `explain`, with the
/// data loaded in memory.
fn open(ui: &Ui, args: &ScoringArgs) -> Result<(BatchScorer, Dataset)> {
    let dataset = load_and_report(ui, &args.data, &args.work, reference_time(&args.now)?)?.dataset;
    let scorer = scorer(args, dataset.last_event_time())?;
    Ok((scorer, dataset))
}

/// The model, playbook and as-of time (`--as-of`, else `last_event`).
fn scorer(args: &ScoringArgs, last_event: Option<i64>) -> Result<BatchScorer> {
    let artifact = load_feature_model(&args.source)?;
    let playbook = churn_model::playbook::load(args.playbook.as_deref(), artifact.model.schema())?;
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
    Ok(BatchScorer {
        artifact,
        policy,
        bands,
        as_of,
        horizon,
        label,
    })
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
            let (scoring, dataset) = open(ui, &args.scoring)?;
            (scoring, dataset, None)
        }
        Some(split) => {
            let work = &args.scoring.work;
            let spill_in = args.out_of_core.spill.as_deref().unwrap_or(work);
            let now = reference_time(&args.scoring.now)?;
            let mut part =
                load_partitioned_and_report(ui, &args.scoring.data, work, now, split, spill_in)?;
            let scoring = scorer(&args.scoring, part.event_span.map(|span| span.1))?;
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
    let (scoring, mut dataset) = open(ui, &args.scoring)?;
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
    let a = scoring.answer(&example, all)?;
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
