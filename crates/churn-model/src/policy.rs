//! The policy interface: what to do for one scored learner.
//!
//! The playbook ([`crate::playbook`]) and the uplift policies that `churn ab`
//! exports implement [`Policy`], so the server, `churn predict` and `churn ab`
//! treat them alike.

use serde::{Deserialize, Serialize};

use crate::model::Prediction;
use crate::schema::{Input, InputSchema};

/// One learner as a policy sees it: the values the model read and the model's
/// answer.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    pub schema: &'a InputSchema,
    pub input: Input<'a>,
    pub prediction: &'a Prediction,
}

/// What a policy suggests for one learner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The intervention (`none` for no intervention).
    pub action: String,
    /// Why, in words a person acts on.
    pub reason: String,
    /// The policy that chose it, `name@version`.
    pub policy: String,
    /// The probability that the policy picks this action for this learner:
    /// 1 for a deterministic policy, less for an exploring one. Logged so
    /// that `churn ab` can evaluate other policies on the logged decisions.
    pub propensity: f64,
}

/// A rule that turns a scored learner into a suggested intervention.
pub trait Policy: Send + Sync {
    /// `name@version`, as logged with each suggestion.
    fn id(&self) -> String;
    /// The actions this policy can suggest (including `none`).
    fn actions(&self) -> Vec<String>;
    /// The suggestion for one learner.
    fn suggest(&self, case: &Case<'_>) -> Suggestion;
}

/// The action that means "do nothing".
pub const NO_ACTION: &str = "none";
