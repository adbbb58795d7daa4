//! The statistics of retention experiments (DESIGN.md "A/B evaluation of
//! interventions"): per-arm churn rates with Wilson intervals, each arm
//! against control (difference with Newcombe's interval, pooled two-proportion
//! z-test, Holm adjustment across arms), sample-ratio mismatch, and planning.
//!
//! Every function matches statsmodels / scipy on committed fixtures
//! (`fixtures/make_fixtures.py`, `tests/reference.rs`).
//!
//! [`readout`] assembles them for one experiment; [`policy_value`] estimates
//! what a targeting policy would have done (IPW, SNIPW, DR).
//!
//! The whole readout of an experiment: [`experiment::select`] picks its
//! learners and outcomes from a dataset (or [`from_log`] from the server's
//! prediction log), [`analysis::analyse`] computes everything `ab.json`
//! holds, and [`summary`] says it to people (terminal text and `ab.html`).

pub mod analysis;
pub mod design;
pub mod experiment;
pub mod from_log;
pub mod policy_value;
pub mod readout;
pub mod stats;
pub mod summary;
pub mod targeting;
pub mod uplift;

/// What can go wrong reading an experiment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AbError {
    /// The data or the options do not allow the statistic; the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] churn_model::ModelError),
    #[error(transparent)]
    Report(#[from] churn_html::ReportError),
}
