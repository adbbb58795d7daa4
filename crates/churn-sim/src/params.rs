//! Simulation parameters: raw, then checked once ([`SimParams::check`]).

use churn_core::DAY_MS;

/// How learners are put into experiment arms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentMode {
    /// Every arm with probability 1/4.
    Uniform,
    /// Riskier learners are treated more often; the propensity of the arm
    /// received is logged, so naive comparisons are biased and IPW is not.
    Targeted,
}

/// Raw parameters, as the CLI gives them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimParams {
    /// Number of learners.
    pub learners: usize,
    /// Days simulated; the data covers `[start, start + days · 1 day)`.
    pub days: u32,
    /// The one seed every random step derives from.
    pub seed: u64,
    /// First day of the platform, ms since epoch UTC (must be midnight).
    pub start: i64,
    /// Number of courses in the catalogue.
    pub courses: usize,
    /// Day (from `start`) at which the experiment assigns learners;
    /// `None` places it `horizon_days + 15` days before the end.
    pub experiment_day: Option<u32>,
    /// Outcome horizon of the experiment in days (the label horizon).
    pub horizon_days: u32,
    /// How arms are assigned.
    pub assignment: AssignmentMode,
    /// A change of behaviour from this day on (for monitoring): learners who
    /// sign up from it come mostly from social and paid search, and every
    /// live class from it has worse latency. `None`: no change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_day: Option<u32>,
}

impl Default for SimParams {
    fn default() -> Self {
        SimParams {
            learners: 5_000,
            days: 180,
            seed: 42,
            // 2026-01-01T00:00:00Z
            start: 1_767_225_600_000,
            courses: 40,
            experiment_day: None,
            horizon_days: 30,
            assignment: AssignmentMode::Uniform,
            drift_day: None,
        }
    }
}

/// Parameters that passed [`SimParams::check`]; only these reach the simulator.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ValidSimParams {
    pub(crate) raw: SimParams,
    pub(crate) experiment_day: u32,
}

/// A parameter outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid simulation parameter {name}: {reason}")]
pub struct ParamError {
    /// Which parameter.
    pub name: &'static str,
    /// Why.
    pub reason: String,
}

fn bad(name: &'static str, reason: impl Into<String>) -> ParamError {
    ParamError {
        name,
        reason: reason.into(),
    }
}

impl SimParams {
    /// Validates ranges and resolves defaults.
    pub fn check(self) -> Result<ValidSimParams, ParamError> {
        if self.learners == 0 || self.learners > 10_000_000 {
            return Err(bad("learners", "must be in 1..=10000000"));
        }
        if self.courses < 3 || self.courses > 100_000 {
            return Err(bad("courses", "must be in 3..=100000"));
        }
        if self.horizon_days == 0 {
            return Err(bad("horizon_days", "must be positive"));
        }
        let min_days = self.horizon_days + 30;
        if self.days < min_days || self.days > 3_650 {
            return Err(bad(
                "days",
                format!(
                    "must be in {min_days}..=3650 (30 days of history before the experiment plus its horizon)"
                ),
            ));
        }
        if self.drift_day.is_some_and(|d| d == 0 || d >= self.days) {
            return Err(bad("drift_day", format!("must be in 1..{}", self.days)));
        }
        if self.start.rem_euclid(DAY_MS) != 0 {
            return Err(bad("start", "must be a midnight UTC"));
        }
        let latest = self.days - self.horizon_days;
        let experiment_day = self
            .experiment_day
            .unwrap_or(latest.saturating_sub(15).max(30));
        if experiment_day < 30 || experiment_day > latest {
            return Err(bad(
                "experiment_day",
                format!(
                    "must be in 30..={latest} so that history and the whole horizon lie inside the data"
                ),
            ));
        }
        Ok(ValidSimParams {
            raw: self,
            experiment_day,
        })
    }
}

impl ValidSimParams {
    /// The raw parameters (with defaults unresolved).
    pub fn raw(&self) -> &SimParams {
        &self.raw
    }

    /// When the experiment assigns learners, ms since epoch UTC.
    pub fn assigned_at(&self) -> i64 {
        self.raw.start + i64::from(self.experiment_day) * DAY_MS
    }

    /// The end of the data (exclusive), ms since epoch UTC.
    pub fn data_end(&self) -> i64 {
        self.raw.start + i64::from(self.raw.days) * DAY_MS
    }

    /// The outcome horizon in ms.
    pub fn horizon_ms(&self) -> i64 {
        i64::from(self.raw.horizon_days) * DAY_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_check_and_bad_values_are_named() {
        let valid = SimParams::default().check().map_err(|e| e.to_string());
        assert_eq!(valid.map(|v| v.experiment_day), Ok(135));
        let err = SimParams {
            learners: 0,
            ..SimParams::default()
        }
        .check()
        .unwrap_err();
        assert_eq!(err.name, "learners");
        let err = SimParams {
            days: 40,
            ..SimParams::default()
        }
        .check()
        .unwrap_err();
        assert_eq!(err.name, "days");
        let err = SimParams {
            experiment_day: Some(170),
            ..SimParams::default()
        }
        .check()
        .unwrap_err();
        assert_eq!(err.name, "experiment_day");
        let err = SimParams {
            start: 1,
            ..SimParams::default()
        }
        .check()
        .unwrap_err();
        assert_eq!(err.name, "start");
    }
}
