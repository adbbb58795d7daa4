//! `churn predict` and `churn explain`: a model and the playbook applied to
//! the learners of a data directory at one as-of time.

use anyhow::{Context, Result, bail};
use churn_core::{DAY_MS, Dataset, format_timestamp, parse_timestamp};
use churn_model::Input;
use churn_model::artifact::Artifact;
use churn_model::batch::{BatchScorer, KEPT_PER_LEARNER, Partitions, ScoredLine, ScorerSpec};

use crate::cli::{ExplainArgs, ModelSource, PredictArgs, ScoringArgs};
use crate::flags::{duration, reference_time};
use crate::loading::{load_and_report, load_partitioned_and_report};
use crate::output::write_file;
use crate::ui::{Ui, print_text, say};

/// Loads an artifact that reads churn's own features.
pub fn load_feature_model(source: &ModelSource) -> Result<Artifact> {
    Ok(churn_model::artifact::load_feature_model(
        &source.model,
        &source.models,
    )?)
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
    let spec = ScorerSpec {
        model: &args.source.model,
        models: &args.source.models,
        playbook: args.playbook.as_deref(),
        policy: args.policy.as_deref(),
        horizon: args
            .horizon
            .as_deref()
            .map(|text| duration("--horizon", text))
            .transpose()?,
        as_of: args
            .as_of
            .as_deref()
            .map(|text| parse_timestamp(text).with_context(|| format!("--as-of {text:?}")))
            .transpose()?,
    };
    Ok(BatchScorer::open(&spec, last_event)?)
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
        Some(part) => scoring.score_in_partitions::<anyhow::Error>(
            &mut dataset,
            &points,
            args.top_k,
            Partitions {
                count: part.partitions(),
                partition_of: &|learner| part.partition_of(learner),
                events_of: &|k| Ok(part.events_of(k)?),
            },
            &progress,
        )?,
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
