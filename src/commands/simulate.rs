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
    let format = match args.format {
        FileFormat::Parquet => Format::Parquet,
        FileFormat::Csv => Format::Csv,
    };
    // Chunk by chunk: memory stays bounded by the chunk, not the population.
    let simulator = churn_sim::Simulator::new(&params);
    let names = churn_core::Dataset {
        courses: simulator.courses().to_vec(),
        ..churn_core::Dataset::default()
    };
    let mut tables = churn_data::DatasetWriter::create(&args.out, format, &names)?;
    let mut truth = churn_sim::TruthWriter::create(&args.out, &params)?;
    let bar = ui.progress(args.learners as u64, "simulating");
    let (mut events, mut assignments) = (0usize, 0usize);
    for chunk in simulator.chunks(churn_sim::LEARNERS_PER_CHUNK, &|n| bar.inc(n)) {
        tables.write_chunk(
            chunk.first_learner,
            &chunk.learners,
            &chunk.events,
            &chunk.assignments,
        )?;
        truth.write(&chunk.learners, &chunk.truth, chunk.events.len())?;
        events += chunk.events.len();
        assignments += chunk.assignments.len();
    }
    bar.finish_and_clear();
    tables.finish()?;
    let experiment = truth.finish()?;
    say!(
        "simulated {} learners, {} courses, {} events, {} assignments in {:.1} s -> {}",
        args.learners,
        names.courses.len(),
        events,
        assignments,
        clock.elapsed().as_secs_f64(),
        args.out.display()
    )?;
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
