//! `churn.features` and `churn.validate`: the data contract's rules and the
//! training table of `churn features`, on tables in memory.

use churn_core::{LabelDefinition, now_ms, parse_duration, parse_timestamp};
use churn_data::{Contract, LoadOptions, Loaded, TableSource, Tables, ValidationReport};
use churn_features::{FeatureSet, SnapshotSpec};
use churn_table::TableWriter;
use polars::prelude::DataFrame;
use pyo3::prelude::*;

use crate::ChurnError;
use crate::arrow::{ArrowStream, import};

/// The tables of one data set as Python passed them.
struct Inputs {
    tables: Tables,
    contract: Contract,
    now: i64,
}

fn inputs(
    [learners, courses, events]: [&Bound<'_, PyAny>; 3],
    [assignments, deadlines]: [Option<&Bound<'_, PyAny>>; 2],
    contract: Option<&str>,
    now: Option<&str>,
) -> PyResult<Inputs> {
    let source = |table: &Bound<'_, PyAny>, name: &str| -> PyResult<TableSource> {
        Ok(TableSource::Frame {
            name: name.into(),
            frame: import(table, name)?,
        })
    };
    let optional =
        |table: Option<&Bound<'_, PyAny>>, name: &str| -> PyResult<Option<TableSource>> {
            table.map(|t| source(t, name)).transpose()
        };
    let contract = match contract {
        Some(text) => {
            Contract::parse(text).map_err(|e| ChurnError::new_err(format!("contract: {e}")))?
        }
        None => Contract::default(),
    };
    Ok(Inputs {
        tables: Tables {
            learners: source(learners, "learners")?,
            courses: source(courses, "courses")?,
            events: source(events, "events")?,
            assignments: optional(assignments, "assignments")?,
            deadlines: optional(deadlines, "deadlines")?,
        },
        contract,
        now: time("now", now)?.unwrap_or_else(now_ms),
    })
}

fn time(argument: &str, text: Option<&str>) -> PyResult<Option<i64>> {
    text.map(|t| {
        parse_timestamp(t).map_err(|e| ChurnError::new_err(format!("{argument}={t:?}: {e}")))
    })
    .transpose()
}

fn duration(argument: &str, text: &str) -> PyResult<i64> {
    parse_duration(text).map_err(|e| ChurnError::new_err(format!("{argument}={text:?}: {e}")))
}

fn load(py: Python<'_>, inputs: Inputs) -> PyResult<Loaded> {
    let Inputs {
        tables,
        contract,
        now,
    } = inputs;
    py.detach(move || churn_data::load_tables(&tables, contract, &LoadOptions { now }))
        .map_err(|e| ChurnError::new_err(e.to_string()))
}

/// The account of every row read, as JSON: per table the counts and each
/// rejected row's number, field and reason.
fn report_json(report: &ValidationReport) -> String {
    let tables: Vec<serde_json::Value> = report
        .tables
        .iter()
        .map(|t| {
            let rejects: Vec<serde_json::Value> = t
                .rejects
                .iter()
                .map(|r| serde_json::json!({"row": r.row, "field": r.field, "reason": r.reason}))
                .collect();
            serde_json::json!({
                "table": t.table.name(),
                "read": t.read,
                "accepted": t.accepted,
                "rejected": t.rejects.len(),
                "rejects": rejects,
            })
        })
        .collect();
    serde_json::json!({"tables": tables, "total_rejected": report.total_rejected()}).to_string()
}

/// Validates the tables by the data contract: the report as JSON.
#[pyfunction]
#[pyo3(signature = (learners, courses, events, *, assignments = None, deadlines = None, contract = None, now = None))]
#[allow(clippy::too_many_arguments)]
pub fn validate(
    py: Python<'_>,
    learners: &Bound<'_, PyAny>,
    courses: &Bound<'_, PyAny>,
    events: &Bound<'_, PyAny>,
    assignments: Option<&Bound<'_, PyAny>>,
    deadlines: Option<&Bound<'_, PyAny>>,
    contract: Option<&str>,
    now: Option<&str>,
) -> PyResult<String> {
    let inputs = inputs(
        [learners, courses, events],
        [assignments, deadlines],
        contract,
        now,
    )?;
    Ok(report_json(&load(py, inputs)?.report))
}

/// The training table of `churn features` (features and labels at rolling
/// as-of times) and the validation report (JSON).
#[pyfunction]
#[pyo3(signature = (
    learners, courses, events, *, assignments = None, deadlines = None, contract = None,
    now = None, from_time = None, to_time = None, every = "14d", horizon = "30d",
    data_end = None, label = None, custom_types = churn_features::DEFAULT_CUSTOM_TYPES,
    custom_event_types = None,
))]
#[allow(clippy::too_many_arguments)]
pub fn features(
    py: Python<'_>,
    learners: &Bound<'_, PyAny>,
    courses: &Bound<'_, PyAny>,
    events: &Bound<'_, PyAny>,
    assignments: Option<&Bound<'_, PyAny>>,
    deadlines: Option<&Bound<'_, PyAny>>,
    contract: Option<&str>,
    now: Option<&str>,
    from_time: Option<&str>,
    to_time: Option<&str>,
    every: &str,
    horizon: &str,
    data_end: Option<&str>,
    label: Option<&str>,
    custom_types: usize,
    custom_event_types: Option<Vec<String>>,
) -> PyResult<(ArrowStream, String)> {
    let inputs = inputs(
        [learners, courses, events],
        [assignments, deadlines],
        contract,
        now,
    )?;
    let spec = SnapshotSpec {
        from: time("as_of/from_time", from_time)?,
        to: time("as_of/to_time", to_time)?,
        every: duration("every", every)?,
        horizon: duration("horizon", horizon)?,
        data_end: time("data_end", data_end)?,
        label: match label {
            Some(text) => LabelDefinition::parse(text)
                .map_err(|e| ChurnError::new_err(format!("label={text:?}: {e}")))?,
            None => inputs.contract.label,
        },
    };
    let Loaded {
        mut dataset,
        report,
        ..
    } = load(py, inputs)?;
    let table: Result<DataFrame, String> = py.detach(|| {
        let plan = spec.resolve(&dataset).map_err(|e| e.to_string())?;
        let set = match custom_event_types {
            // Fixed by the caller (a cluster's driver): the same columns for
            // every part of the data, whichever types the part holds.
            Some(names) => FeatureSet::new(names, dataset.attributes.clone())
                .map_err(|e| format!("custom_event_types: {e}"))?
                .with_calendar_of(&dataset),
            None => FeatureSet::choose(&dataset, custom_types).map_err(|e| e.to_string())?,
        };
        let mut writer = TableWriter::in_memory(set);
        writer
            .append(&mut dataset, &plan, &|_| {})
            .map_err(|e| e.to_string())?;
        let (frame, _) = writer.finish_in_memory().map_err(|e| e.to_string())?;
        Ok(frame)
    });
    let table = table.map_err(ChurnError::new_err)?;
    Ok((ArrowStream::new(table), report_json(&report)))
}

/// The as-of times and the data end that `features` would use for data whose
/// events span `first_ms..=last_ms` (ms since the epoch): what a cluster
/// fixes once on the driver, so that every worker computes the same plan.
#[pyfunction]
#[pyo3(signature = (first_ms, last_ms, *, from_time = None, to_time = None, every = "14d", horizon = "30d", data_end = None))]
#[allow(clippy::too_many_arguments)]
pub fn snapshot_plan(
    first_ms: i64,
    last_ms: i64,
    from_time: Option<&str>,
    to_time: Option<&str>,
    every: &str,
    horizon: &str,
    data_end: Option<&str>,
) -> PyResult<(Vec<i64>, i64)> {
    let spec = SnapshotSpec {
        from: time("as_of/from_time", from_time)?,
        to: time("as_of/to_time", to_time)?,
        every: duration("every", every)?,
        horizon: duration("horizon", horizon)?,
        data_end: time("data_end", data_end)?,
        label: LabelDefinition::Either,
    };
    let plan = spec
        .resolve_for_span(Some((first_ms, last_ms)))
        .map_err(|e| ChurnError::new_err(e.to_string()))?;
    Ok((plan.times().to_vec(), plan.data_end()))
}

/// The contract's known event types (every other name is a custom type).
#[pyfunction]
pub fn known_event_types() -> Vec<&'static str> {
    churn_core::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect()
}
