//! Loading a data directory the way every command does: validate it, write
//! the rejects and `validation.json` beside the command's output, say the
//! counts, and check that they reconcile.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use churn_data::{LoadOptions, Loaded, ValidationReport};

use crate::output::write_json;
use crate::ui::Ui;

/// Loads and validates `data` (times after `now` are rejected) and reports
/// the validation into `out`.
pub fn load_and_report(ui: &Ui, data: &Path, out: &Path, now: i64) -> Result<Loaded> {
    let spinner = ui.spinner("validating");
    let loaded = churn_data::load_dir(data, &LoadOptions { now })?;
    spinner.finish_and_clear();
    report_validation(ui, &loaded.report, out)?;
    Ok(loaded)
}

/// Validates `data` and spills its events by learner under `spill_in`
/// (`--memory`, `--partitions`), reports the validation into `out` and says
/// how the learners were divided.
pub fn load_partitioned_and_report(
    ui: &Ui,
    data: &Path,
    out: &Path,
    now: i64,
    split: churn_data::Split,
    spill_in: &Path,
) -> Result<churn_data::Partitioned> {
    let spinner = ui.spinner("validating and spilling the events by learner");
    let part = churn_data::load_dir_partitioned(data, &LoadOptions { now }, split, spill_in)?;
    spinner.finish_and_clear();
    report_validation(ui, &part.report, out)?;
    crate::ui::say!(
        "events spilled by learner ({:.1} MiB under {}), computed in {} partitions",
        part.spilled_bytes() as f64 / f64::from(1 << 20),
        spill_in.display(),
        part.partitions()
    )?;
    Ok(part)
}

/// Writes the rejects and validation.json to `out` and prints the counts.
pub fn report_validation(ui: &Ui, report: &ValidationReport, out: &Path) -> Result<()> {
    let written = report.write_rejects(out)?;
    churn_core::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_json(&out.join("validation.json"), &report.to_json())?;
    let text = format!(
        "{report}{} rows rejected; rejects written to {}",
        report.total_rejected(),
        written
            .first()
            .and_then(|p| p.parent())
            .unwrap_or(out)
            .display()
    );
    ui.summary(&text)?;
    for table in &report.tables {
        if !table.reconciles() {
            bail!("internal error: counts of {} do not reconcile", table.table);
        }
    }
    Ok(())
}

/// `--strict` with rejected rows: says so and fails.
pub fn strict_failure(report: &ValidationReport, out: &Path) -> ExitCode {
    eprintln!(
        "error: --strict: {} rows rejected (see {})",
        report.total_rejected(),
        out.join("rejects").display()
    );
    ExitCode::FAILURE
}
