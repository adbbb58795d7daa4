//! Each subcommand: validate its arguments, call the crates, report.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use churn_core::parse_timestamp;
use churn_data::{Format, LoadOptions, ValidationReport};
use churn_sim::{AssignmentMode, SimParams};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{
    Assignment, Cli, Command, FileFormat, QuickstartArgs, SimulateArgs, ValidateArgs,
};

pub fn run(cli: Cli) -> Result<ExitCode> {
    if let Some(threads) = cli.threads {
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("cannot set up the thread pool")?;
    }
    let ui = Ui { quiet: cli.quiet };
    match cli.command {
        Command::Quickstart(args) => quickstart(&ui, &args),
        Command::Simulate(args) => simulate(&ui, &args).map(|_| ExitCode::SUCCESS),
        Command::Validate(args) => validate(&ui, &args),
    }
}

struct Ui {
    quiet: bool,
}

impl Ui {
    fn progress(&self, len: u64, what: &str) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        bar
    }

    fn spinner(&self, what: &str) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(i64::MAX)
}

fn simulate(ui: &Ui, args: &SimulateArgs) -> Result<()> {
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
    println!(
        "simulated {} learners, {} courses, {} events, {} assignments in {:.1} s (written in {:.1} s) -> {}",
        d.learners.len(),
        d.courses.len(),
        d.events.len(),
        d.assignments.len(),
        simulated_in.as_secs_f64(),
        (clock.elapsed() - simulated_in).as_secs_f64(),
        args.out.display()
    );
    let experiment = &simulation.truth.experiment;
    println!(
        "experiment {} at {}: {} learners, true 30-day churn effect per arm (vs control):",
        experiment.experiment_id, experiment.assigned_at, experiment.assigned
    );
    for arm in &experiment.arms {
        println!(
            "  {:<20} n={:<6} realised churn {:>5.1}%  true effect {:>+6.2} pp",
            arm.arm,
            arm.n,
            100.0 * arm.realised_rate,
            100.0 * arm.true_effect
        );
    }
    Ok(())
}

fn load_and_report(ui: &Ui, data: &Path, out: &Path, now: i64) -> Result<ValidationReport> {
    let spinner = ui.spinner("validating");
    let loaded = churn_data::load_dir(data, &LoadOptions { now })?;
    spinner.finish_and_clear();
    let report = loaded.report;
    let written = report.write_rejects(out)?;
    let summary = out.join("validation.json");
    std::fs::write(&summary, format!("{:#}\n", report.to_json()))
        .with_context(|| format!("cannot write {}", summary.display()))?;
    print!("{report}");
    println!(
        "{} rows rejected; rejects written to {}",
        report.total_rejected(),
        written
            .first()
            .and_then(|p| p.parent())
            .unwrap_or(out)
            .display()
    );
    for table in &report.tables {
        if !table.reconciles() {
            bail!("internal error: counts of {} do not reconcile", table.table);
        }
    }
    Ok(report)
}

fn validate(ui: &Ui, args: &ValidateArgs) -> Result<ExitCode> {
    let now = match &args.now {
        Some(text) => parse_timestamp(text).with_context(|| format!("--now {text:?}"))?,
        None => now_ms(),
    };
    let report = load_and_report(ui, &args.data, &args.out, now)?;
    if args.strict && report.total_rejected() > 0 {
        eprintln!(
            "error: --strict: {} rows rejected (see {})",
            report.total_rejected(),
            args.out.join("rejects").display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn quickstart(ui: &Ui, args: &QuickstartArgs) -> Result<ExitCode> {
    println!(
        "== 1. validate the committed sample ({})",
        args.data.display()
    );
    let report = load_and_report(ui, &args.data, &args.out.join("validate"), now_ms())?;
    if report.total_rejected() > 0 {
        bail!("the committed sample should validate cleanly");
    }
    println!("\n== 2. simulate a fresh platform with known truth");
    let sim_out = args.out.join("simulated");
    simulate(
        ui,
        &SimulateArgs {
            learners: 2_000,
            days: 120,
            seed: 7,
            out: sim_out.clone(),
            format: FileFormat::Parquet,
            start: "2026-01-01".into(),
            courses: 30,
            experiment_day: None,
            assignment: Assignment::Uniform,
        },
    )?;
    println!("\n== 3. validate it");
    load_and_report(ui, &sim_out, &args.out.join("validate-simulated"), now_ms())?;
    println!("\nresults in {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
