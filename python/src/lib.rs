//! `churn._churn`, the Rust half of the Python package `churn`: the same
//! crates as the CLI and the server (churn-data's contract, churn-features
//! through churn-table, churn-model, churn-gbdt), with Arrow tables and numpy
//! arrays in and out. Heavy work runs with the interpreter released.

mod arrow;
mod features;
mod gbdt;
mod model;

use pyo3::prelude::*;

pyo3::create_exception!(
    churn,
    ChurnError,
    pyo3::exceptions::PyValueError,
    "Input churn cannot use: a bad table, argument, model or parameter. The message names it."
);

#[pymodule]
fn _churn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ChurnError", m.py().get_type::<ChurnError>())?;
    m.add_class::<arrow::ArrowStream>()?;
    m.add_class::<model::Model>()?;
    m.add_class::<gbdt::Booster>()?;
    m.add_function(wrap_pyfunction!(features::features, m)?)?;
    m.add_function(wrap_pyfunction!(features::validate, m)?)?;
    m.add_function(wrap_pyfunction!(features::snapshot_plan, m)?)?;
    m.add_function(wrap_pyfunction!(features::known_event_types, m)?)?;
    m.add_function(wrap_pyfunction!(model::load_model, m)?)?;
    Ok(())
}
