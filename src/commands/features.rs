//! `churn features`: the training table (features and labels at rolling
//! as-of times), in one pass or by partitions of learners.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use churn_core::format_timestamp;
use churn_features::FeatureSet;
use churn_table::{TableFormat, TableWriter};

use crate::cli::FeaturesArgs;
use crate::flags::{reference_time, snapshot_spec};
use crate::loading::{load_and_report, load_partitioned_and_report, strict_failure};
use crate::ui::{Ui, say};

pub fn features(ui: &Ui, args: &FeaturesArgs) -> Result<ExitCode> {
    let now = reference_time(&args.now)?;
    let spec = snapshot_spec(
        &args.snapshots.settings(),
        &churn_data::Contract::read_dir(&args.data)?,
        now,
    )?;
    TableFormat::of(&args.out)?;
    let out_dir = match args.out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let clock = Instant::now();
    // Rows are written as each partition is computed: nothing kept per learner.
    let split = args.out_of_core.split(0);
    let (plan, summary, loaded_in) = if let Some(split) = split {
        if args.points.is_some() {
            anyhow::bail!("--points reads every event at once: drop --memory and --partitions");
        }
        let spill_in = args.out_of_core.spill.as_deref().unwrap_or(&out_dir);
        let mut part = load_partitioned_and_report(ui, &args.data, &out_dir, now, split, spill_in)?;
        if args.strict && part.report.total_rejected() > 0 {
            return Ok(strict_failure(&part.report, &out_dir));
        }
        let loaded_in = clock.elapsed();
        let plan = spec.resolve_for_span(part.event_span)?;
        let bar = ui.progress(
            (part.dataset.learners.len() * part.partitions()) as u64,
            "features",
        );
        let set = FeatureSet::choose_by_occurrences(
            &part.dataset.custom_event_types,
            part.custom_type_occurrences(),
            &part.dataset.attributes,
            args.custom_types,
        )?;
        say_feature_set(&set)?;
        let mut writer = TableWriter::create(&args.out, set)?;
        for k in 0..part.partitions() {
            part.dataset.events = part.events_of(k)?;
            writer.append(&mut part.dataset, &plan, &|n| bar.inc(n))?;
            part.dataset.events = Vec::new();
        }
        bar.finish_and_clear();
        (plan, writer.finish()?, loaded_in)
    } else {
        let churn_data::Loaded {
            mut dataset,
            report,
            ..
        } = load_and_report(ui, &args.data, &out_dir, now)?;
        if args.strict && report.total_rejected() > 0 {
            return Ok(strict_failure(&report, &out_dir));
        }
        let loaded_in = clock.elapsed();
        let plan = spec.resolve(&dataset)?;
        let set = FeatureSet::choose(&dataset, args.custom_types)?;
        say_feature_set(&set)?;
        if let Some(file) = &args.points {
            let points = read_points_reporting(file, &dataset, &out_dir)?;
            let bar = ui.progress(points.pairs.len() as u64, "features");
            let mut writer = TableWriter::create(&args.out, set)?;
            writer.append_points(&mut dataset, &points.pairs, &plan, &|n| bar.inc(n))?;
            bar.finish_and_clear();
            let summary = writer.finish()?;
            say!(
                "{} points: {} examples ({} labelled, {:.1}% churned), {} where the learner was not an example (not signed up, gone or finished) -> {}",
                points.pairs.len(),
                summary.rows,
                summary.labelled,
                100.0 * summary.churned as f64 / summary.labelled.max(1) as f64,
                summary.points_not_examples,
                args.out.display()
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        let bar = ui.progress(dataset.learners.len() as u64, "features");
        let summary =
            churn_table::write_table(&mut dataset, &plan, set, &args.out, &|n| bar.inc(n))?;
        bar.finish_and_clear();
        (plan, summary, loaded_in)
    };
    let times = plan.times();
    say!(
        "{} snapshots every {} from {} to {} (horizon {}, data end {})",
        times.len(),
        args.snapshots.every,
        times
            .first()
            .map_or_else(String::new, |&t| format_timestamp(t)),
        times
            .last()
            .map_or_else(String::new, |&t| format_timestamp(t)),
        args.snapshots.horizon,
        format_timestamp(plan.data_end()),
    )?;
    say!(
        "{} examples of {} learners: {} labelled ({:.1}% churned), {} unlabelled; loaded in {:.1} s, features in {:.1} s -> {}",
        summary.rows,
        summary.learners,
        summary.labelled,
        100.0 * summary.churned as f64 / summary.labelled.max(1) as f64,
        summary.rows - summary.labelled,
        loaded_in.as_secs_f64(),
        (clock.elapsed() - loaded_in).as_secs_f64(),
        args.out.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn say_feature_set(set: &FeatureSet) -> Result<()> {
    if !set.is_empty() {
        say!("features beyond the registry: {set}")?;
    }
    Ok(())
}

/// Reads `--points` against the dataset's learners; rejects go to
/// `<out_dir>/rejects/points.csv`, and the counts are said.
pub fn read_points_reporting(
    file: &std::path::Path,
    dataset: &churn_core::Dataset,
    out_dir: &std::path::Path,
) -> Result<churn_data::Points> {
    let points = churn_data::read_points(file, dataset)?;
    say!(
        "{}: {} points read = {} accepted + {} rejected",
        file.display(),
        points.read,
        points.pairs.len(),
        points.rejects.len()
    )?;
    if let Some(path) = points.write_rejects(out_dir)? {
        say!("rejected points written to {}", path.display())?;
    }
    Ok(points)
}
