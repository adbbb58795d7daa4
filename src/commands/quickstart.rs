//! `churn quickstart`: the main job on the committed sample, step by step
//! (validate, features, train, predict, simulate, validate, serve).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use churn_core::{Dataset, format_timestamp};

use crate::cli::{
    Assignment, FeaturesArgs, FileFormat, QuickstartArgs, ServeArgs, SimulateArgs, SnapshotArgs,
};
use crate::commands::{features, scoring, serve, simulate, train};
use crate::loading::load_and_report;
use crate::output::write_file;
use crate::ui::{Ui, say};

pub fn quickstart(ui: &Ui, args: &QuickstartArgs) -> Result<ExitCode> {
    say!(
        "== 1. validate the committed sample ({})",
        args.data.display()
    )?;
    let churn_data::Loaded {
        dataset: sample,
        report,
        ..
    } = load_and_report(
        ui,
        &args.data,
        &args.out.join("validate"),
        churn_core::now_ms(),
    )?;
    if report.total_rejected() > 0 {
        bail!("the committed sample should validate cleanly");
    }
    say!("\n== 2. compute the training table (features and labels every 14 days)")?;
    features::features(
        ui,
        &FeaturesArgs {
            data: args.data.clone(),
            out: args.out.join("features/table.parquet"),
            snapshots: SnapshotArgs::default(),
            strict: false, // step 1 already refused a sample with rejects
            now: None,
            out_of_core: crate::cli::OutOfCoreArgs::default(),
            custom_types: churn_features::DEFAULT_CUSTOM_TYPES,
            points: None,
        },
    )?;
    say!("\n== 3. train gbdt and logistic models out of time, with the report")?;
    let models = args.out.join("models");
    let written = train::train(
        ui,
        &crate::cli::TrainArgs {
            data: Some(args.data.clone()),
            out: Some(models.clone()),
            work: Some(args.out.join("train")),
            ..Default::default()
        },
    )?;
    say!("\n== 4. score the active learners at the end of the data, with reasons and actions")?;
    let scored = scoring::predict(
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
            points: None,
            top_k: 3,
            out_of_core: crate::cli::OutOfCoreArgs::default(),
        },
    )?;
    say!("\n== 5. simulate a fresh platform with known truth")?;
    let sim_out = args.out.join("simulated");
    simulate::simulate(
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
    say!("\n== 6. validate it")?;
    load_and_report(
        ui,
        &sim_out,
        &args.out.join("validate-simulated"),
        churn_core::now_ms(),
    )?;
    let example_request = match &scored.riskiest {
        Some((learner, probability)) => {
            let path = args.out.join("request.json");
            write_example_request(&sample, learner, scored.as_of, &path)?;
            say!(
                "\nan example request: {} holds learner {learner}'s profile and events up to {} (batch probability {probability:.4}; the server answers the same)",
                path.display(),
                format_timestamp(scored.as_of)
            )?;
            Some(path)
        }
        None => None,
    };
    say!("\nresults in {}", args.out.display())?;
    if let Some(dir) = written.first() {
        say!(
            "open the training report: {}",
            dir.join("report.html").display()
        )?;
    }
    if args.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    say!("\n== 7. serve the trained gbdt model (Ctrl-C to stop)")?;
    say!("try, from another terminal:")?;
    say!("  curl -s http://{}/v1/models", args.addr)?;
    if let Some(request) = &example_request {
        say!(
            "  curl -s http://{}/v1/predict -H 'content-type: application/json' -d @{}",
            args.addr,
            request.display()
        )?;
    }
    serve::serve(&ServeArgs {
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
    write_file(path, |w| {
        serde_json::to_writer_pretty(&mut *w, &body)?;
        Ok(())
    })
}
