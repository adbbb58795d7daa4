//! `churn tune`: each family's parameters searched by the backtest
//! (churn-train's `tune`), the winner written for `churn train --config`,
//! every trial beside it as JSON and HTML.

use anyhow::{Result, bail};
use std::io::Write;

use churn_train::tune::{settings_toml, trials_report};

use crate::cli::TuneArgs;
use crate::commands::train::{from_churn_data, plain_table, settings};
use crate::output::{write_file, write_json};
use crate::ui::{Ui, say};

pub fn tune(ui: &Ui, args: &TuneArgs) -> Result<()> {
    if args.trials == 0 {
        bail!("--trials must be at least 1");
    }
    let settings = settings::resolve(&args.train)?;
    let prepared = match (&settings.data, &settings.features) {
        (Some(data), _) => from_churn_data(ui, &settings, data, &args.train.out_of_core)?,
        (None, Some(features)) => plain_table::prepare(ui, &settings, features)?,
        (None, None) => bail!("give --data DIR or --features FILE --label COL"),
    };
    let folds = if prepared.folds.is_empty() {
        vec![prepared.split.clone()]
    } else {
        prepared.folds.clone()
    };
    let base = settings.config();
    let families = settings.families();
    let started = std::time::Instant::now();
    let mut searches = Vec::new();
    for family in families {
        // Rung r keeps ceil(n / 3^r), plus trial 0: at most this many fits.
        let mut budget = 0;
        let mut alive = args.trials;
        for rung in 0..folds.len() {
            budget += alive;
            if rung + 1 < folds.len() {
                alive = alive.div_ceil(churn_train::tune::ETA).max(1) + 1;
            }
        }
        let bar = ui.progress(budget as u64, &format!("tuning {}", family.name()));
        let search = churn_train::tune::tune(
            &prepared.table,
            &folds,
            family,
            &base,
            args.trials,
            &mut |fits| bar.set_position(fits as u64),
        )?;
        bar.finish_and_clear();
        let (best, first) = (&search.trials[search.best], &search.trials[0]);
        say!(
            "{}: {} candidates, {} fits over {} folds; best trial {} mean AUC {:.4} over {} folds, the settings given (trial 0) {:.4} over {}",
            family.name(),
            search.trials.len(),
            search.fits,
            folds.len(),
            best.id,
            best.mean_auc,
            best.folds.len(),
            first.mean_auc,
            first.folds.len()
        )?;
        if let Some(d) = &search.best_minus_given {
            say!(
                "  best − settings given: {:+.4} [{:+.4}, {:+.4}] mean AUC over the folds (paired bootstrap; optimistic: the best of {} was picked on these folds)",
                d.estimate,
                d.low,
                d.high,
                search.trials.len()
            )?;
        }
        searches.push(search);
    }
    let toml: Vec<String> = searches.iter().map(settings_toml).collect();
    if let Some(dir) = args.tuned.parent().filter(|d| !d.as_os_str().is_empty()) {
        churn_core::create_dir_all(dir)?;
    }
    write_file(
        &args.tuned,
        |w| Ok(w.write_all(toml.join("\n").as_bytes())?),
    )?;
    let dir = args
        .tuned
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    write_json(&dir.join("trials.json"), &searches)?;
    let html = trials_report(&searches, folds.len());
    write_file(&dir.join("trials.html"), |w| {
        Ok(w.write_all(html.as_bytes())?)
    })?;
    say!(
        "tuned in {:.1} s -> {} (train with --config {}); trials in {}",
        started.elapsed().as_secs_f64(),
        args.tuned.display(),
        args.tuned.display(),
        dir.join("trials.html").display()
    )?;
    Ok(())
}
