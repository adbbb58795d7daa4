//! `churn simulate`: a platform with known churn drivers and a randomised
//! experiment, written as a data directory with its truth.

use std::time::Instant;

use anyhow::{Context, Result};
use churn_core::parse_timestamp;
use churn_data::Format;
use churn_sim::{AssignmentMode, SimParams};

use crate::cli::{Assignment, FileFormat, SimulateArgs};
use crate::ui::{Ui, say};

pub fn simulate(ui: &Ui, args: &SimulateArgs) -> Result<()> {
    let start =
        parse_timestamp(&args.start).with_context(|| format!("--start {:?}", args.start))?;
    let params = SimParams {
        learners: args.learners,
        days: args.days,
        seed: args.seed,
        start,
        courses: args.courses,
        experiment_day: args.experiment_day,
        horizon_days: 30,
        drift_day: args.drift_day,
        assignment: match args.assignment {
            Assignment::Uniform => AssignmentMode::Uniform,
            Assignment::Targeted => AssignmentMode::Targeted,
        },
    }
    .check()?;
    let clock = Instant::now();
    let bar = ui.progress(args.learners as u64, "simulating");
    let simulation = churn_sim::simulate(&params, &|n| bar.inc(n));
    bar.finish_and_clear();
    let simulated_in = clock.elapsed();
    let format = match args.format {
        FileFormat::Parquet => Format::Parquet,
        FileFormat::Csv => Format::Csv,
    };
    let spinner = ui.spinner("writing tables");
    churn_data::write_dataset(&simulation.dataset, &args.out, format)?;
    simulation.truth.write(&args.out, &simulation.dataset)?;
    spinner.finish_and_clear();
    let d = &simulation.dataset;
    say!(
        "simulated {} learners, {} courses, {} events, {} assignments in {:.1} s (written in {:.1} s) -> {}",
        d.learners.len(),
        d.courses.len(),
        d.events.len(),
        d.assignments.len(),
        simulated_in.as_secs_f64(),
        (clock.elapsed() - simulated_in).as_secs_f64(),
        args.out.display()
    )?;
    let experiment = &simulation.truth.experiment;
    say!(
        "experiment {} at {}: {} learners, true 30-day churn effect per arm (vs control):",
        experiment.experiment_id,
        experiment.assigned_at,
        experiment.assigned
    )?;
    for arm in &experiment.arms {
        say!(
            "  {:<20} n={:<6} realised churn {:>5.1}%  true effect {:>+6.2} pp",
            arm.arm,
            arm.n,
            100.0 * arm.realised_rate,
            100.0 * arm.true_effect
        )?;
    }
    Ok(())
}
