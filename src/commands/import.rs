//! `churn import`: a mapping file's sources into a contract data directory,
//! then that directory validated as every command will read it.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::DataImportArgs;
use crate::flags::reference_time;
use crate::loading::{load_and_report, strict_failure};
use crate::ui::{Ui, say};

pub fn import(ui: &Ui, args: &DataImportArgs) -> Result<ExitCode> {
    let now = reference_time(&args.now)?;
    let mapping = churn_import::Mapping::read(&args.mapping)?;
    let spinner = ui.spinner("importing");
    let report = churn_import::import(&mapping, &args.out)?;
    spinner.finish_and_clear();
    ui.summary(report.to_string().trim_end())?;
    if !report.reconciles() {
        bail!("internal error: the counts of an import section do not reconcile");
    }
    if args.no_validate {
        say!(
            "wrote {} (import.json, rejects/ per section)",
            args.out.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "wrote {} (import.json, rejects/ per section); validating it:",
        args.out.display()
    )?;
    let validation = args.out.join("validation");
    let loaded = load_and_report(ui, &args.out, &validation, now)?;
    let rejected = report.total_rejected() + loaded.report.total_rejected();
    if args.strict && rejected > 0 {
        if loaded.report.total_rejected() > 0 {
            return Ok(strict_failure(&loaded.report, &validation));
        }
        eprintln!(
            "error: --strict: {} source rows rejected (see {})",
            report.total_rejected(),
            args.out.join("rejects").display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
