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
//! Still to come (issue 7): CUPED, effects by risk decile, uplift models with
//! Qini/AUUC, the policy comparison, the HTML report.

pub mod design;
pub mod policy_value;
pub mod readout;
pub mod stats;
pub mod targeting;
pub mod uplift;

/// What can go wrong computing a statistic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AbError {
    #[error("{0}")]
    Invalid(String),
}
