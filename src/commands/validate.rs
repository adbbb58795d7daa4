//! `churn validate`: read / accepted / rejected per table, the rejects and
//! `validation.json`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::ValidateArgs;
use crate::flags::reference_time;
use crate::loading::{load_and_report, strict_failure};
use crate::ui::Ui;

pub fn validate(ui: &Ui, args: &ValidateArgs) -> Result<ExitCode> {
    let report = load_and_report(ui, &args.data, &args.out, reference_time(&args.now)?)?.report;
    if args.strict && report.total_rejected() > 0 {
        return Ok(strict_failure(&report, &args.out));
    }
    Ok(ExitCode::SUCCESS)
}
