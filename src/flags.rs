//! Flag values that several commands parse the same way: times, durations,
//! snapshot plans and the reference "now".

use anyhow::{Context, Result};
use churn_core::{LabelDefinition, now_ms, parse_duration, parse_timestamp};
use churn_data::Contract;
use churn_features::SnapshotSpec;

use churn_train::settings::Snapshots;

/// A duration flag such as `--horizon 30d`, in ms.
pub fn duration(flag: &str, text: &str) -> Result<i64> {
    parse_duration(text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{flag} {text:?}"))
}

/// An optional time flag such as `--from 2026-01-01`, in ms.
pub fn optional_time(flag: &str, text: &Option<String>) -> Result<Option<i64>> {
    text.as_deref()
        .map(|t| parse_timestamp(t).with_context(|| format!("{flag} {t:?}")))
        .transpose()
}

/// `--now`, else the wall clock: what "in the future" means when validating.
pub fn reference_time(now: &Option<String>) -> Result<i64> {
    Ok(optional_time("--now", now)?.unwrap_or_else(now_ms))
}

/// The snapshot flags shared by features, train and evaluate. `now` is the
/// reference time: rows after it are rejected, so the data cannot cover a
/// `--data-end` past it (every horizon reaching beyond would look churned).
pub fn snapshot_spec(args: &Snapshots, contract: &Contract, now: i64) -> Result<SnapshotSpec> {
    let data_end = optional_time("--data-end", &args.data_end)?;
    if let Some(end) = data_end.filter(|&end| end > now) {
        anyhow::bail!(
            "--data-end {} is after --now {}: rows after --now are rejected, so the data cannot cover that far and every label window reaching past --now would read as churned",
            churn_core::format_timestamp(end),
            churn_core::format_timestamp(now)
        );
    }
    Ok(SnapshotSpec {
        from: optional_time("--from", &args.from)?,
        to: optional_time("--to", &args.to)?,
        every: duration("--every", &args.every)?,
        horizon: duration("--horizon", &args.horizon)?,
        data_end,
        label: label(&args.label, contract)?,
    })
}

/// `--label`, else the data's contract's.
pub fn label(flag: &Option<String>, contract: &Contract) -> Result<LabelDefinition> {
    match flag {
        Some(text) => LabelDefinition::parse(text).with_context(|| format!("--label {text:?}")),
        None => Ok(contract.label),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_flag_value_is_named_with_the_flag() {
        assert_eq!(
            duration("--every", "14d").expect("parses"),
            14 * churn_core::DAY_MS
        );
        let err = format!(
            "{:#}",
            duration("--every", "fortnight").expect_err("refused")
        );
        assert!(err.starts_with("--every \"fortnight\""), "{err}");
        let err = format!(
            "{:#}",
            optional_time("--from", &Some("yesterday".into())).expect_err("refused")
        );
        assert!(err.starts_with("--from \"yesterday\""), "{err}");
        assert_eq!(optional_time("--to", &None).expect("none"), None);
    }

    #[test]
    fn a_data_end_after_now_is_refused() {
        let now = parse_timestamp("2026-05-18T00:00:00Z").expect("time");
        let snapshots = |end: &str| Snapshots {
            data_end: Some(end.into()),
            ..Snapshots::default()
        };
        let contract = Contract::default();
        let err = format!(
            "{:#}",
            snapshot_spec(&snapshots("2026-06-30T00:00:00Z"), &contract, now).expect_err("refused")
        );
        assert!(
            err.starts_with("--data-end 2026-06-30T00:00:00Z is after --now 2026-05-18T00:00:00Z"),
            "{err}"
        );
        let spec =
            snapshot_spec(&snapshots("2026-05-18T00:00:00Z"), &contract, now).expect("at now");
        assert_eq!(spec.data_end, Some(now));
    }
}
