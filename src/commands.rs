//! Each subcommand: validate its arguments, call the crates, report.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use churn_core::Dataset;
use churn_core::{format_timestamp, parse_duration, parse_timestamp};
use churn_data::{Format, LoadOptions, ValidationReport};
use churn_sim::{AssignmentMode, SimParams};
use churn_table::{SnapshotSpec, TableFormat, TableWriter};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{
    Assignment, Cli, Command, EvaluateArgs, FeaturesArgs, FileFormat, ImportArgs, QuickstartArgs,
    ServeArgs, SimulateArgs, SnapshotArgs, ValidateArgs,
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
    let ui = Ui {
        quiet: cli.quiet,
        // Their output is the answer (JSON, a table, a CSV): the validation
        // summary goes to stderr.
        validation_on_stderr: matches!(cli.command, Command::Predict(_) | Command::Explain(_)),
    };
    match cli.command {
        Command::Quickstart(args) => quickstart(&ui, &args),
        Command::Simulate(args) => simulate(&ui, &args).map(|_| ExitCode::SUCCESS),
        Command::Validate(args) => validate(&ui, &args),
        Command::Features(args) => features(&ui, &args),
        Command::Train(args) => crate::training::train(&ui, &args).map(|_| ExitCode::SUCCESS),
        Command::Evaluate(args) => evaluate(&ui, &args).map(|_| ExitCode::SUCCESS),
        Command::Predict(args) => crate::scoring::predict(&ui, &args).map(|_| ExitCode::SUCCESS),
        Command::Serve(args) => serve(&args).map(|_| ExitCode::SUCCESS),
        Command::Ab(args) => crate::ab::ab(&ui, &args).map(|_| ExitCode::SUCCESS),
        Command::Monitor(args) => crate::monitor::monitor(&ui, &args),
        Command::ImportLightgbm(args) => import_lightgbm(&args).map(|_| ExitCode::SUCCESS),
        Command::Explain(args) => crate::scoring::explain(&ui, &args).map(|_| ExitCode::SUCCESS),
    }
}

pub struct Ui {
    quiet: bool,
    validation_on_stderr: bool,
}

impl Ui {
    pub fn progress(&self, len: u64, what: &str) -> ProgressBar {
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

    pub fn spinner(&self, what: &str) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }
}

pub fn now_ms() -> i64 {
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

pub fn load_and_report(
    ui: &Ui,
    data: &Path,
    out: &Path,
    now: i64,
) -> Result<(Dataset, ValidationReport)> {
    let spinner = ui.spinner("validating");
    let loaded = churn_data::load_dir(data, &LoadOptions { now })?;
    spinner.finish_and_clear();
    report_validation(ui, &loaded.report, out)?;
    Ok((loaded.dataset, loaded.report))
}

/// Writes the rejects and validation.json to `out` and prints the counts.
fn report_validation(ui: &Ui, report: &ValidationReport, out: &Path) -> Result<()> {
    let written = report.write_rejects(out)?;
    let summary = out.join("validation.json");
    std::fs::write(&summary, format!("{:#}\n", report.to_json()))
        .with_context(|| format!("cannot write {}", summary.display()))?;
    let text = format!(
        "{report}{} rows rejected; rejects written to {}",
        report.total_rejected(),
        written
            .first()
            .and_then(|p| p.parent())
            .unwrap_or(out)
            .display()
    );
    if ui.validation_on_stderr {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    for table in &report.tables {
        if !table.reconciles() {
            bail!("internal error: counts of {} do not reconcile", table.table);
        }
    }
    Ok(())
}

pub fn reference_time(now: &Option<String>) -> Result<i64> {
    match now {
        Some(text) => Ok(parse_timestamp(text).with_context(|| format!("--now {text:?}"))?),
        None => Ok(now_ms()),
    }
}

fn optional_time(flag: &str, text: &Option<String>) -> Result<Option<i64>> {
    text.as_deref()
        .map(|t| parse_timestamp(t).with_context(|| format!("{flag} {t:?}")))
        .transpose()
}

fn strict_failure(report: &ValidationReport, out: &Path) -> ExitCode {
    eprintln!(
        "error: --strict: {} rows rejected (see {})",
        report.total_rejected(),
        out.join("rejects").display()
    );
    ExitCode::FAILURE
}

fn validate(ui: &Ui, args: &ValidateArgs) -> Result<ExitCode> {
    let (_, report) = load_and_report(ui, &args.data, &args.out, reference_time(&args.now)?)?;
    if args.strict && report.total_rejected() > 0 {
        return Ok(strict_failure(&report, &args.out));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn snapshot_spec(args: &SnapshotArgs) -> Result<SnapshotSpec> {
    let duration = |flag: &str, text: &str| {
        parse_duration(text)
            .map_err(anyhow::Error::msg)
            .with_context(|| flag.to_owned())
    };
    Ok(SnapshotSpec {
        from: optional_time("--from", &args.from)?,
        to: optional_time("--to", &args.to)?,
        every: duration("--every", &args.every)?,
        horizon: duration("--horizon", &args.horizon)?,
        data_end: optional_time("--data-end", &args.data_end)?,
    })
}

fn features(ui: &Ui, args: &FeaturesArgs) -> Result<ExitCode> {
    let spec = snapshot_spec(&args.snapshots)?;
    TableFormat::of(&args.out)?;
    let out_dir = match args.out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let clock = Instant::now();
    let now = reference_time(&args.now)?;
    let (plan, summary, loaded_in) = if args.partitions.get() == 1 {
        let (mut dataset, report) = load_and_report(ui, &args.data, &out_dir, now)?;
        if args.strict && report.total_rejected() > 0 {
            return Ok(strict_failure(&report, &out_dir));
        }
        let loaded_in = clock.elapsed();
        let plan = spec.resolve(&dataset)?;
        let bar = ui.progress(dataset.learners.len() as u64, "features");
        let summary = churn_table::write_table(&mut dataset, &plan, &args.out, &|n| bar.inc(n))?;
        bar.finish_and_clear();
        (plan, summary, loaded_in)
    } else {
        let spinner = ui.spinner("validating");
        let mut part =
            churn_data::load_dir_partitioned(&args.data, &LoadOptions { now }, args.partitions)?;
        spinner.finish_and_clear();
        report_validation(ui, &part.report, &out_dir)?;
        if args.strict && part.report.total_rejected() > 0 {
            return Ok(strict_failure(&part.report, &out_dir));
        }
        let loaded_in = clock.elapsed();
        let plan = spec.resolve_for_span(part.event_span)?;
        let bar = ui.progress(
            (part.dataset.learners.len() * part.partitions()) as u64,
            "features",
        );
        let mut writer = TableWriter::create(&args.out)?;
        for k in 0..part.partitions() {
            part.dataset.events = part.events_of(k)?;
            writer.append(&mut part.dataset, &plan, &|n| bar.inc(n))?;
            part.dataset.events = Vec::new();
        }
        bar.finish_and_clear();
        (plan, writer.finish()?, loaded_in)
    };
    let times = plan.times();
    println!(
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
    );
    println!(
        "{} examples of {} learners: {} labelled ({:.1}% churned), {} unlabelled; loaded in {:.1} s, features in {:.1} s -> {}",
        summary.rows,
        summary.learners,
        summary.labelled,
        100.0 * summary.churned as f64 / summary.labelled.max(1) as f64,
        summary.rows - summary.labelled,
        loaded_in.as_secs_f64(),
        (clock.elapsed() - loaded_in).as_secs_f64(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn quickstart(ui: &Ui, args: &QuickstartArgs) -> Result<ExitCode> {
    println!(
        "== 1. validate the committed sample ({})",
        args.data.display()
    );
    let (sample, report) = load_and_report(ui, &args.data, &args.out.join("validate"), now_ms())?;
    if report.total_rejected() > 0 {
        bail!("the committed sample should validate cleanly");
    }
    println!("\n== 2. compute the training table (features and labels every 14 days)");
    features(
        ui,
        &FeaturesArgs {
            data: args.data.clone(),
            out: args.out.join("features/table.parquet"),
            snapshots: SnapshotArgs::default(),
            strict: false, // step 1 already refused a sample with rejects
            now: None,
            partitions: std::num::NonZeroUsize::MIN,
        },
    )?;
    println!("\n== 3. train gbdt and logistic models out of time, with the report");
    let models = args.out.join("models");
    let written = crate::training::train(
        ui,
        &crate::cli::TrainArgs {
            data: Some(args.data.clone()),
            out: Some(models.clone()),
            work: Some(args.out.join("train")),
            ..Default::default()
        },
    )?;
    println!("\n== 4. score the active learners at the end of the data, with reasons and actions");
    let scored = crate::scoring::predict(
        ui,
        &crate::cli::PredictArgs {
            scoring: crate::cli::ScoringArgs {
                source: crate::cli::ModelSource {
                    model: "churn-gbdt".into(),
                    models,
                },
                data: args.data.clone(),
                as_of: None,
                playbook: None,
                policy: None,
                horizon: None,
                work: args.out.join("predict"),
                now: None,
            },
            out: args.out.join("predictions.csv"),
            top_k: 3,
        },
    )?;
    println!("\n== 5. simulate a fresh platform with known truth");
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
            drift_day: None,
        },
    )?;
    println!("\n== 6. validate it");
    load_and_report(ui, &sim_out, &args.out.join("validate-simulated"), now_ms())?;
    let example_request = match &scored.riskiest {
        Some((learner, probability)) => {
            let path = args.out.join("request.json");
            write_example_request(&sample, learner, scored.as_of, &path)?;
            println!(
                "\nan example request: {} holds learner {learner}'s profile and events up to {} (batch probability {probability:.4}; the server answers the same)",
                path.display(),
                format_timestamp(scored.as_of)
            );
            Some(path)
        }
        None => None,
    };
    println!("\nresults in {}", args.out.display());
    if let Some(dir) = written.first() {
        println!(
            "open the training report: {}",
            dir.join("report.html").display()
        );
    }
    if args.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    println!("\n== 7. serve the trained gbdt model (Ctrl-C to stop)");
    println!("try, from another terminal:");
    println!("  curl -s http://{}/v1/models", args.addr);
    if let Some(request) = &example_request {
        println!(
            "  curl -s http://{}/v1/predict -H 'content-type: application/json' -d @{}",
            args.addr,
            request.display()
        );
    }
    serve(&ServeArgs {
        models: Some(args.out.join("models")),
        champion: Some("churn-gbdt".into()),
        addr: Some(args.addr),
        ..Default::default()
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Writes a `/v1/predict` body asking about `learner` of `dataset` at `as_of`,
/// from raw events, as an application would send it.
fn write_example_request(dataset: &Dataset, learner: &str, as_of: i64, path: &Path) -> Result<()> {
    let index = dataset
        .learners
        .iter()
        .position(|l| l.id == learner)
        .with_context(|| format!("learner {learner} is not in the sample"))?;
    let mut events: Vec<&churn_core::Event> = dataset
        .events
        .iter()
        .filter(|e| e.learner as usize == index && e.ts <= as_of)
        .collect();
    events.sort_by_key(|e| e.ts);
    let body = serde_json::json!({
        "instances": [churn_serve::raw_instance(dataset, index, &events, as_of)
            .with_context(|| format!("learner {learner} is not in the sample"))?],
        "top_k": 3,
    });
    write_atomically(path, |w| {
        serde_json::to_writer_pretty(&mut *w, &body)?;
        Ok(())
    })
}

fn evaluate(ui: &Ui, args: &EvaluateArgs) -> Result<()> {
    let artifact = crate::scoring::load_feature_model(&args.source)?;
    let spec = snapshot_spec(&args.snapshots)?;
    let (mut dataset, _) = load_and_report(ui, &args.data, &args.work, reference_time(&args.now)?)?;
    let plan = spec.resolve(&dataset)?;
    let table = churn_train::Table::from_dataset(&mut dataset, &plan);
    if table.rows() == 0 {
        bail!("no labelled examples at the as-of times asked for");
    }
    let bar = ui.progress(table.rows() as u64, "scoring");
    let mut probabilities = Vec::with_capacity(table.rows());
    for i in 0..table.rows() {
        let mut categories = Vec::new();
        probabilities.push(
            artifact
                .model
                .probability(&table.input(i, &mut categories))?,
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    let m = churn_train::metrics::metrics(&probabilities, &table.labels, artifact.card.seed);
    println!(
        "{}@{} on {} labelled examples ({} labelled as-of times): churn {:.1}%",
        artifact.card.name,
        artifact.card.version,
        m.rows,
        {
            let mut times = table.as_of.clone();
            times.sort_unstable();
            times.dedup();
            times.len()
        },
        100.0 * m.churn_rate
    );
    let rows: Vec<usize> = (0..table.rows()).collect();
    let by_segment =
        churn_train::metrics_by_segment(&table, &rows, &probabilities, artifact.card.seed);
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "overall": m,
            "by_segment": by_segment,
        }))?
    );
    Ok(())
}

fn import_lightgbm(args: &ImportArgs) -> Result<()> {
    let path = &args.model_txt;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes.clone()).with_context(|| {
        format!(
            "{} is not a LightGBM text model (not UTF-8)",
            path.display()
        )
    })?;
    let model = churn_model::import::from_lightgbm(&text, |name| {
        churn_features::registry::find(name).map(|f| f.description.to_owned())
    })
    .with_context(|| format!("cannot import {}", path.display()))?;
    let trees = match &model.scorer {
        churn_model::Scorer::Gbdt(m) => m.trees.len(),
        churn_model::Scorer::Logistic(_) => 0,
    };
    let reads_churn_features = model.schema.reads_churn_features();
    let card_input = churn_model::CardInput {
        training: serde_json::json!({
            "mode": "imported_lightgbm",
            "source": path.display().to_string(),
            "source_sha256": churn_model::artifact::sha256_hex(&bytes),
            "reads_churn_features": reads_churn_features,
        }),
        seed: 0,
        parameters: serde_json::json!({ "trees": trees, "calibration": model.calibration.name() }),
        metrics: serde_json::json!({}),
        created_at_ms: now_ms(),
        reference: None,
    };
    let (card, dir) = churn_model::artifact::save(&args.out, &args.name, &model, card_input)?;
    println!(
        "{}@{}: {} trees, {} features ({}) -> {}",
        card.name,
        card.version,
        trees,
        card.features.len(),
        if reads_churn_features {
            "churn's features: evaluate, predict, explain and serve work on raw data"
        } else {
            "a plain table: serve with feature payloads"
        },
        dir.display()
    );
    Ok(())
}

/// The server's settings: defaults < --config < CHURN_SERVE_* < flags.
pub fn serve_config(args: &ServeArgs) -> Result<churn_serve::ServeConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --config {}", path.display()))?;
            churn_serve::ServeConfig::from_toml(&text)
                .with_context(|| format!("--config {}", path.display()))?
        }
        None => churn_serve::ServeConfig::default(),
    };
    config.apply_env(std::env::vars())?;
    if let Some(v) = &args.models {
        config.models = v.clone();
    }
    if let Some(v) = &args.champion {
        config.champion = v.clone();
    }
    if let Some(v) = &args.challenger {
        config.challenger = Some(v.clone());
    }
    if let Some(v) = args.challenger_share {
        config.challenger_share = v;
    }
    if let Some(v) = args.addr {
        config.addr = v;
    }
    if let Some(v) = &args.playbook {
        config.playbook = Some(v.clone());
    }
    if let Some(v) = &args.policy {
        config.policy = Some(v.clone());
    }
    if let Some(v) = &args.feature_log {
        config.feature_log = Some(v.clone());
    }
    if let Some(v) = args.feature_log_share {
        config.feature_log_share = v;
    }
    if let Some(v) = args.epsilon {
        config.epsilon = v;
    }
    if let Some(v) = &args.courses {
        config.courses = Some(v.clone());
    }
    if let Some(v) = &args.prediction_log {
        config.prediction_log = Some(v.clone());
    }
    if let Some(v) = args.watch_seconds {
        config.watch_seconds = v;
    }
    if let Some(v) = args.max_batch {
        config.max_batch = v;
    }
    if let Some(v) = args.max_concurrency {
        config.max_concurrency = v;
    }
    config.check()?;
    Ok(config)
}

fn serve(args: &ServeArgs) -> Result<()> {
    let config = serve_config(args)?;
    let addr = config.addr;
    let app = churn_serve::App::build(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| churn_serve::ServeError::Bind(addr, e))?;
        let bound = listener.local_addr().unwrap_or(addr);
        for (role, model) in app.models() {
            println!("{role}: {model}");
        }
        println!("listening on http://{bound}  (POST /v1/predict, GET /metrics, /openapi.json)");
        app.serve(listener, churn_serve::shutdown_signal()).await?;
        println!("stopped");
        Ok::<(), anyhow::Error>(())
    })
}

/// Writes `path` through a temporary file beside it and a rename, so a reader
/// never sees half a file.
/// Writes `<out>/<stem>.json` (pretty) and `<out>/<stem>.html`, each atomically,
/// and says where.
pub fn write_json_and_html(
    out: &Path,
    stem: &str,
    value: &impl serde::Serialize,
    html: &str,
) -> Result<()> {
    churn_core::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json_path = out.join(format!("{stem}.json"));
    write_atomically(&json_path, |w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        Ok(std::io::Write::write_all(w, b"\n")?)
    })?;
    let html_path = out.join(format!("{stem}.html"));
    write_atomically(&html_path, |w| {
        Ok(std::io::Write::write_all(w, html.as_bytes())?)
    })?;
    println!("wrote {} and {}", json_path.display(), html_path.display());
    Ok(())
}

pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<()>,
) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut out = std::io::BufWriter::new(file);
    write(&mut out).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::io::Write::flush(&mut out).with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(out);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
