//! `churn ab`: the readout of one retention experiment (outcome = the churn
//! label at `assigned_at`, or the assignments' `churned` column), who it
//! helps, and which targeting policy to roll out; `churn ab plan` sizes one.
//! The statistics are churn-ab's; this module wires flags, files and output.

use anyhow::{Context, Result};
use churn_ab::analysis::Options;
use churn_ab::experiment::Choice;

use crate::cli::{AbArgs, AbCommand, ModelSource, PlanArgs};
use crate::commands::scoring::load_feature_model;
use crate::flags::{duration, reference_time};
use crate::loading::load_and_report;
use crate::output::{write_json_and_html, write_log_rejects};
use crate::ui::{Ui, print_text, say};

pub fn ab(ui: &Ui, args: &AbArgs) -> Result<()> {
    if let Some(AbCommand::Plan(plan_args)) = &args.command {
        return plan(plan_args);
    }
    let data = args.data.as_ref().context("--data is required")?;
    let options = Options {
        horizon: duration("--horizon", &args.horizon)?,
        allocation: args.allocation.clone(),
        costs: args.cost.clone(),
        cuped: args.cuped.clone(),
        learner_value: args.learner_value,
        no_uplift: args.no_uplift,
        seed: args.seed,
        resamples: args.resamples,
        export_policy: args.export_policy.clone(),
        now_ms: churn_core::now_ms(),
    };
    options.check()?;
    let model = match &args.model {
        Some(model) => Some(load_feature_model(&ModelSource {
            model: model.clone(),
            models: args.models.clone(),
        })?),
        None => None,
    };
    let loaded = load_and_report(ui, data, &args.out, reference_time(&args.now)?)?;
    let label = crate::flags::label(&args.label, &loaded.contract)?;
    let mut dataset = loaded.dataset;
    if !args.prediction_log.is_empty() {
        let read = churn_model::logs::read_predictions(&args.prediction_log, &dataset)?;
        let from_log = churn_ab::from_log::assignments(read.read, &args.control);
        let repeats = from_log.repeats.len();
        let mut rejects = read.rejects;
        let rejected = rejects.len();
        rejects.extend(from_log.repeats);
        let rejects_path = write_log_rejects(&args.out, "prediction_log", &rejects)?;
        say!(
            "prediction log: {} lines = {} assignments + {repeats} repeat predictions + {rejected} rejected (written to {})",
            read.lines,
            from_log.assignments.len(),
            rejects_path.display()
        )?;
        dataset.assignments = from_log.assignments;
    }
    let spinner = ui.spinner("outcomes and features at assignment");
    let choice = Choice {
        experiment: args.experiment.clone(),
        control: args.control.clone(),
    };
    let experiment = churn_ab::experiment::select(&mut dataset, &choice, label, options.horizon)?;
    spinner.finish_and_clear();
    let bar = ui.progress(0, "uplift models (cross-fitted)");
    let analysis =
        churn_ab::analysis::analyse(&experiment, &options, model.as_ref(), &mut |done, total| {
            bar.set_length(total);
            bar.inc(done);
        })?;
    bar.finish_and_clear();
    print_text(&churn_ab::summary::terminal(&analysis, &args.control))?;
    let html = churn_ab::summary::html(&analysis, &args.control)?;
    write_json_and_html(&args.out, "ab", &analysis, &html)?;
    Ok(())
}

fn plan(args: &PlanArgs) -> Result<()> {
    let n = churn_ab::stats::learners_per_arm(
        args.baseline_rate,
        args.mde,
        args.alpha,
        args.power,
        args.arms,
    )
    .map_err(anyhow::Error::msg)?;
    let per_arm = n.ceil() as u64;
    say!(
        "{per_arm} learners per arm ({} in all with control and {} treated arm{}) detect a churn reduction from {:.1}% to {:.1}% with power {} at two-sided alpha {} ({} per comparison).",
        per_arm * (args.arms as u64 + 1),
        args.arms,
        if args.arms == 1 { "" } else { "s" },
        100.0 * args.baseline_rate,
        100.0 * (args.baseline_rate - args.mde),
        args.power,
        args.alpha,
        args.alpha / args.arms as f64
    )?;
    Ok(())
}
