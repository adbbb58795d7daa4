//! The playbook: risk bands and the platform's rules from warning signal to
//! intervention (DESIGN.md "Domain"), read from `playbook.toml`.
//!
//! A [`PlaybookFile`] is what the TOML says; [`Playbook::bind`] checks it
//! against a model's schema once (every feature named exists, every threshold
//! is finite, bands are ordered), so suggesting never fails.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::policy::{Case, Policy, Suggestion};
use crate::schema::{InputSchema, Kind};

/// The committed default playbook (`playbook.toml` at the repository root).
pub const DEFAULT_TOML: &str = include_str!("../../../playbook.toml");

/// The playbook format this program reads.
pub const FORMAT_VERSION: u32 = 1;

/// A risk band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskBand {
    Low,
    Medium,
    High,
}

impl RiskBand {
    pub fn name(self) -> &'static str {
        match self {
            RiskBand::Low => "low",
            RiskBand::Medium => "medium",
            RiskBand::High => "high",
        }
    }
}

/// Probability thresholds: low < `medium` ≤ medium < `high` ≤ high.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskBands {
    pub medium: f64,
    pub high: f64,
}

impl RiskBands {
    /// The band of a probability.
    pub fn band(&self, probability: f64) -> RiskBand {
        if probability >= self.high {
            RiskBand::High
        } else if probability >= self.medium {
            RiskBand::Medium
        } else {
            RiskBand::Low
        }
    }
}

impl Default for RiskBands {
    fn default() -> Self {
        RiskBands {
            medium: 0.2,
            high: 0.5,
        }
    }
}

/// The playbook file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookFile {
    pub format_version: u32,
    pub name: String,
    pub risk_bands: RiskBands,
    pub suggest: SuggestRule,
    pub fallback_low: Outcome,
    pub fallback: Outcome,
    #[serde(default, rename = "play")]
    pub plays: Vec<Play>,
}

/// When to look for a play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestRule {
    /// Learners below this band get `fallback_low`.
    pub min_band: RiskBand,
    /// How many top factors are read.
    pub top_k: usize,
}

/// A fixed action with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub action: String,
    pub reason: String,
}

/// One rule: a signal (the features that carry it), conditions on the
/// learner's values, and the intervention that answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Play {
    pub action: String,
    /// The warning signal's name (e.g. `inactivity`).
    pub signal: String,
    /// Features whose top-factor rank triggers this play.
    pub features: Vec<String>,
    /// Conditions that must all hold (a missing value fails a condition).
    #[serde(default)]
    pub when: Vec<Condition>,
    /// The reason; `{feature}` is replaced by the learner's value.
    pub reason: String,
}

/// A condition on one feature's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub feature: String,
    #[serde(default)]
    pub at_least: Option<f64>,
    #[serde(default)]
    pub at_most: Option<f64>,
    /// Categorical features: the value must be one of these.
    #[serde(default)]
    pub is: Option<Vec<String>>,
}

/// A playbook checked against a model's schema: ready to suggest.
#[derive(Debug, Clone)]
pub struct Playbook {
    file: PlaybookFile,
    /// Per play: schema indices of its features.
    play_features: Vec<Vec<usize>>,
    /// Per play: its conditions with schema indices.
    play_conditions: Vec<Vec<(usize, Condition)>>,
    /// Per play: the reason split into text and feature placeholders.
    play_reasons: Vec<Vec<Piece>>,
    schema_names: Vec<String>,
    numeric_len: usize,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Feature(usize),
}

impl PlaybookFile {
    /// Parses a playbook; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ModelError> {
        let file: PlaybookFile = toml::from_str(text).map_err(|e| ModelError::Playbook {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
        if file.format_version != FORMAT_VERSION {
            return Err(ModelError::Playbook {
                path: origin.to_path_buf(),
                reason: format!(
                    "format_version {}, this program reads {FORMAT_VERSION}",
                    file.format_version
                ),
            });
        }
        Ok(file)
    }

    /// Reads and parses a playbook file.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }
}

impl Playbook {
    /// Checks `file` against `schema`; `origin` names the playbook in errors.
    pub fn bind(
        file: PlaybookFile,
        schema: &InputSchema,
        origin: &Path,
    ) -> Result<Self, ModelError> {
        let fail = |reason: String| ModelError::Playbook {
            path: origin.to_path_buf(),
            reason,
        };
        let bands = file.risk_bands;
        if !(bands.medium.is_finite()
            && bands.high.is_finite()
            && 0.0 <= bands.medium
            && bands.medium <= bands.high
            && bands.high <= 1.0)
        {
            return Err(fail(format!(
                "risk_bands: need 0 <= medium <= high <= 1, got medium = {}, high = {}",
                bands.medium, bands.high
            )));
        }
        if file.suggest.top_k == 0 {
            return Err(fail("suggest.top_k must be at least 1".into()));
        }
        let index_of = |name: &str, what: &str| -> Result<usize, ModelError> {
            schema
                .features
                .iter()
                .position(|f| f.name == name)
                .ok_or_else(|| fail(format!("{what}: the model has no feature {name:?}")))
        };
        let mut play_features = Vec::new();
        let mut play_conditions = Vec::new();
        let mut play_reasons = Vec::new();
        for (p, play) in file.plays.iter().enumerate() {
            let at = format!("play {} ({})", p + 1, play.action);
            if play.action.trim().is_empty() {
                return Err(fail(format!("{at}: empty action")));
            }
            if play.features.is_empty() {
                return Err(fail(format!("{at}: no features")));
            }
            play_features.push(
                play.features
                    .iter()
                    .map(|f| index_of(f, &at))
                    .collect::<Result<Vec<_>, _>>()?,
            );
            let mut conditions = Vec::new();
            for c in &play.when {
                let j = index_of(&c.feature, &at)?;
                let kind = schema.features[j].kind;
                let numeric = c.at_least.is_some() || c.at_most.is_some();
                match (kind, numeric, &c.is) {
                    (Kind::Numeric, true, None) => {
                        if c.at_least.is_some_and(|v| !v.is_finite())
                            || c.at_most.is_some_and(|v| !v.is_finite())
                        {
                            return Err(fail(format!(
                                "{at}: condition on {:?}: thresholds must be finite",
                                c.feature
                            )));
                        }
                    }
                    (Kind::Categorical, false, Some(_)) => {}
                    _ => {
                        return Err(fail(format!(
                            "{at}: condition on {:?}: a numeric feature takes at_least/at_most, a categorical one takes is",
                            c.feature
                        )));
                    }
                }
                conditions.push((j, c.clone()));
            }
            play_conditions.push(conditions);
            play_reasons.push(parse_reason(&play.reason, |name| index_of(name, &at))?);
        }
        for outcome in [&file.fallback, &file.fallback_low] {
            if outcome.action.trim().is_empty() {
                return Err(fail("a fallback has an empty action".into()));
            }
        }
        Ok(Playbook {
            file,
            play_features,
            play_conditions,
            play_reasons,
            schema_names: schema.features.iter().map(|f| f.name.clone()).collect(),
            numeric_len: schema.numeric_len(),
        })
    }

    /// What the file said.
    pub fn file(&self) -> &PlaybookFile {
        &self.file
    }

    /// The risk bands.
    pub fn bands(&self) -> RiskBands {
        self.file.risk_bands
    }

    /// The play whose signal is `signal`, with the schema indices of its features.
    pub fn signal_features(&self, signal: &str) -> Option<&[usize]> {
        self.file
            .plays
            .iter()
            .position(|p| p.signal == signal)
            .map(|p| self.play_features[p].as_slice())
    }

    fn holds(&self, case: &Case<'_>, j: usize, c: &Condition) -> bool {
        if j < self.numeric_len {
            let v = case.input.numeric[j];
            !v.is_nan() && c.at_least.is_none_or(|t| v >= t) && c.at_most.is_none_or(|t| v <= t)
        } else {
            let v = case.input.categorical[j - self.numeric_len];
            match (&c.is, v) {
                (Some(set), Some(v)) => set.iter().any(|s| s == v),
                _ => false,
            }
        }
    }

    fn value_text(&self, case: &Case<'_>, j: usize) -> String {
        if j < self.numeric_len {
            let v = case.input.numeric[j];
            if v.is_nan() {
                "no data".into()
            } else if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{v:.0}")
            } else if v.abs() >= 1.0 {
                // "21.6 days", "137.4 ms": a person reads one decimal.
                format!("{v:.1}")
            } else {
                format!("{v:.2}")
            }
        } else {
            case.input.categorical[j - self.numeric_len]
                .unwrap_or("missing")
                .to_owned()
        }
    }
}

fn parse_reason(
    text: &str,
    mut index_of: impl FnMut(&str) -> Result<usize, ModelError>,
) -> Result<Vec<Piece>, ModelError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        pieces.push(Piece::Text(rest[..open].to_owned()));
        pieces.push(Piece::Feature(index_of(&rest[open + 1..open + close])?));
        rest = &rest[open + close + 1..];
    }
    pieces.push(Piece::Text(rest.to_owned()));
    Ok(pieces)
}

impl Policy for Playbook {
    fn id(&self) -> String {
        format!("playbook@{}", self.file.name)
    }

    fn actions(&self) -> Vec<String> {
        let mut actions: Vec<String> = self.file.plays.iter().map(|p| p.action.clone()).collect();
        actions.push(self.file.fallback.action.clone());
        actions.push(self.file.fallback_low.action.clone());
        actions.sort();
        actions.dedup();
        actions
    }

    /// Learners at or above `min_band`: the ones the playbook would treat.
    fn eligible(&self, case: &Case<'_>) -> bool {
        self.bands().band(case.prediction.probability) >= self.file.suggest.min_band
    }

    fn suggest(&self, case: &Case<'_>) -> Suggestion {
        let outcome = |action: &str, reason: String| Suggestion {
            action: action.to_owned(),
            reason,
            policy: self.id(),
            propensity: 1.0,
        };
        let band = self.bands().band(case.prediction.probability);
        if band < self.file.suggest.min_band {
            let o = &self.file.fallback_low;
            return outcome(&o.action, o.reason.clone());
        }
        debug_assert_eq!(case.schema.features.len(), self.schema_names.len());
        for factor in case.prediction.top_factors(self.file.suggest.top_k) {
            for (p, play) in self.file.plays.iter().enumerate() {
                if !self.play_features[p].contains(&factor.feature) {
                    continue;
                }
                if !self.play_conditions[p]
                    .iter()
                    .all(|(j, c)| self.holds(case, *j, c))
                {
                    continue;
                }
                let mut reason = String::new();
                for piece in &self.play_reasons[p] {
                    match piece {
                        Piece::Text(t) => reason.push_str(t),
                        Piece::Feature(j) => {
                            let _ = write!(reason, "{}", self.value_text(case, *j));
                        }
                    }
                }
                let _ = write!(
                    reason,
                    " (top factor: {})",
                    self.schema_names[factor.feature]
                );
                return outcome(&play.action, reason);
            }
        }
        let o = &self.file.fallback;
        outcome(&o.action, o.reason.clone())
    }
}

/// The playbook in `path`, or the committed default, checked against `schema`.
pub fn load(path: Option<&Path>, schema: &InputSchema) -> Result<Playbook, ModelError> {
    match path {
        Some(path) => Playbook::bind(PlaybookFile::read(path)?, schema, path),
        None => {
            let origin = PathBuf::from("playbook.toml (built in)");
            Playbook::bind(PlaybookFile::parse(DEFAULT_TOML, &origin)?, schema, &origin)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Prediction;
    use crate::schema::Input;

    fn schema() -> InputSchema {
        InputSchema::churn_features(
            churn_features::FeatureSet::none(),
            vec![
                vec!["annual".into(), "monthly".into()],
                vec!["ads".into()],
                vec!["ios".into()],
                vec!["active".into(), "lapsing".into()],
            ],
        )
        .unwrap()
    }

    fn index(schema: &InputSchema, name: &str) -> usize {
        schema.names().position(|n| n == name).unwrap()
    }

    fn prediction(schema: &InputSchema, probability: f64, top: &[(&str, f64)]) -> Prediction {
        let mut contributions = vec![-0.01; schema.features.len()];
        for (name, c) in top {
            contributions[index(schema, name)] = *c;
        }
        Prediction {
            probability,
            margin: 0.0,
            base_value: 0.0,
            contributions,
        }
    }

    fn suggest(
        playbook: &Playbook,
        schema: &InputSchema,
        numeric: &[f64],
        p: &Prediction,
    ) -> Suggestion {
        let categorical = [Some("monthly"), Some("ads"), Some("ios"), Some("lapsing")];
        playbook.suggest(&Case {
            schema,
            input: Input {
                numeric,
                categorical: &categorical,
            },
            prediction: p,
        })
    }

    #[test]
    fn the_default_parses_and_binds_to_the_feature_registry() {
        let schema = schema();
        let playbook = load(None, &schema).unwrap();
        assert_eq!(playbook.file().plays.len(), 5);
        assert_eq!(playbook.bands(), RiskBands::default());
        assert_eq!(
            playbook.actions(),
            [
                "foundational_course",
                "none",
                "proactive_contact",
                "recall_coupon",
                "study_group",
                "technical_support"
            ]
        );
    }

    #[test]
    fn bands_are_half_open_at_the_thresholds() {
        let bands = RiskBands::default();
        assert_eq!(bands.band(0.1999), RiskBand::Low);
        assert_eq!(bands.band(0.2), RiskBand::Medium);
        assert_eq!(bands.band(0.4999), RiskBand::Medium);
        assert_eq!(bands.band(0.5), RiskBand::High);
    }

    #[test]
    fn the_first_top_factor_with_a_matching_play_decides() {
        let schema = schema();
        let playbook = load(None, &schema).unwrap();
        let mut numeric = vec![0.0; schema.numeric_len()];
        numeric[index(&schema, "days_since_last_login")] = 9.0;
        numeric[index(&schema, "completion_rate")] = 0.125;

        // Low risk: nothing, whatever the factors.
        let low = prediction(&schema, 0.1, &[("days_since_last_login", 1.0)]);
        assert_eq!(suggest(&playbook, &schema, &numeric, &low).action, "none");

        // Inactivity first, and its condition holds.
        let p = prediction(
            &schema,
            0.6,
            &[("days_since_last_login", 1.0), ("completion_rate", 0.5)],
        );
        let s = suggest(&playbook, &schema, &numeric, &p);
        assert_eq!(s.action, "recall_coupon");
        assert_eq!(s.policy, "playbook@default");
        assert_eq!(s.propensity, 1.0);
        assert!(s.reason.starts_with("no login for 9 days"), "{}", s.reason);

        // Inactivity is first but its condition fails (logged in 3 days ago):
        // the next factor decides.
        numeric[index(&schema, "days_since_last_login")] = 3.0;
        let s = suggest(&playbook, &schema, &numeric, &p);
        assert_eq!(s.action, "foundational_course");
        assert!(s.reason.starts_with("completion rate 0.12"), "{}", s.reason);

        // A missing value fails a condition.
        numeric[index(&schema, "days_since_last_login")] = f64::NAN;
        assert_eq!(
            suggest(&playbook, &schema, &numeric, &p).action,
            "foundational_course"
        );

        // No playbook signal among the top factors: the fallback.
        let p = prediction(&schema, 0.3, &[("tenure_days", 1.0)]);
        let s = suggest(&playbook, &schema, &numeric, &p);
        assert_eq!(s.action, "none");
        assert!(s.reason.contains("no playbook signal"));

        // Only positive contributions are factors.
        let p = prediction(&schema, 0.3, &[("refund_views_30d", -1.0)]);
        assert_eq!(suggest(&playbook, &schema, &numeric, &p).action, "none");
    }

    #[test]
    fn bad_playbooks_are_refused_with_the_file_and_the_play() {
        let schema = schema();
        let origin = Path::new("pb.toml");
        let bind = |text: &str| {
            PlaybookFile::parse(text, origin).and_then(|f| Playbook::bind(f, &schema, origin))
        };
        let unknown = DEFAULT_TOML.replace("\"refund_views_7d\"", "\"refund_view_7d\"");
        let err = bind(&unknown).unwrap_err().to_string();
        assert!(
            err.contains("pb.toml")
                && err.contains("play 3 (proactive_contact)")
                && err.contains("refund_view_7d"),
            "{err}"
        );
        let bands = DEFAULT_TOML.replace("high = 0.5", "high = 0.1");
        assert!(
            bind(&bands)
                .unwrap_err()
                .to_string()
                .contains("medium <= high")
        );
        let version = DEFAULT_TOML.replace("format_version = 1", "format_version = 2");
        assert!(
            bind(&version)
                .unwrap_err()
                .to_string()
                .contains("format_version 2")
        );
        let typo = DEFAULT_TOML.replace("top_k = 3", "topk = 3");
        assert!(bind(&typo).unwrap_err().to_string().contains("topk"));
        let kind = DEFAULT_TOML.replace(
            "{ feature = \"refund_views_30d\", at_least = 1 }",
            "{ feature = \"plan\", at_least = 1 }",
        );
        assert!(
            bind(&kind)
                .unwrap_err()
                .to_string()
                .contains("categorical one takes is")
        );
        let placeholder = DEFAULT_TOML.replace("{completion_rate}", "{completion}");
        assert!(
            bind(&placeholder)
                .unwrap_err()
                .to_string()
                .contains("\"completion\"")
        );
    }
}
