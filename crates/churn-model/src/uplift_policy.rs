//! A targeting policy learned from an experiment (`churn ab --export-policy`):
//! which arm to give each learner, from per-arm churn models (uplift) or the
//! served model's risk, net of each arm's cost. It implements [`Policy`], so
//! `churn serve --policy DIR` suggests actions by it, with exploration and
//! propensities as for the playbook.
//!
//! A policy directory holds `policy.json` (the card: rule, arms, costs,
//! features, the estimate it was chosen on, the SHA-256 of the body) and
//! `policy.bin` (postcard: format version and the per-arm gbdt models).

use std::path::{Path, PathBuf};

use churn_gbdt::Predictor;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::artifact::{check_format, io_error, read_body, read_card, sha256_hex};
use crate::policy::{Case, NO_ACTION, Policy, Suggestion};
use crate::schema::{InputFeature, InputSchema};

/// The policy format this program reads and writes.
pub const POLICY_FORMAT_VERSION: u32 = 1;

/// How an arm is chosen. Arm 0 is control (no action).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Rule {
    /// Treat no one.
    Nobody,
    /// Give everyone `arm`.
    Everyone { arm: usize },
    /// Give `arm` to learners whose served churn probability is at least `threshold`.
    RiskAtLeast { threshold: f64, arm: usize },
    /// Give each learner the arm of highest modelled net value (learner value
    /// × churn reduction − cost) when that value is at least `min_net_value`
    /// (and positive); else no action.
    BestNetUplift { min_net_value: f64 },
}

/// `policy.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyCard {
    pub format_version: u32,
    pub name: String,
    pub version: String,
    /// The experiment and candidate it came from, and what it was estimated to do.
    pub source: serde_json::Value,
    /// Arm names; arm 0 is control and is suggested as `none`.
    pub arms: Vec<String>,
    pub costs: Vec<f64>,
    pub learner_value: f64,
    pub rule: Rule,
    /// The features the per-arm models read (empty when the rule needs none).
    pub features: Vec<InputFeature>,
    /// SHA-256 of `policy.bin`.
    pub sha256: String,
}

#[derive(Serialize, Deserialize)]
struct Body {
    format_version: u32,
    models: Vec<churn_gbdt::Model>,
}

/// A loaded, checked policy.
pub struct UpliftPolicy {
    card: PolicyCard,
    schema: Option<InputSchema>,
    predictors: Vec<Predictor>,
}

fn check(card: &PolicyCard, models: &[churn_gbdt::Model]) -> Result<Option<InputSchema>, String> {
    let arms = card.arms.len();
    if arms < 2 || card.costs.len() != arms {
        return Err(format!("{arms} arms and {} costs", card.costs.len()));
    }
    if card
        .costs
        .iter()
        .chain([&card.learner_value])
        .any(|v| !v.is_finite())
    {
        return Err("costs and the learner value must be finite".into());
    }
    match card.rule {
        Rule::Everyone { arm } | Rule::RiskAtLeast { arm, .. } if arm == 0 || arm >= arms => {
            return Err(format!("arm {arm} is not a treated arm (1..{arms})"));
        }
        Rule::RiskAtLeast { threshold, .. } if !(0.0..=1.0).contains(&threshold) => {
            return Err(format!("risk threshold {threshold} is not a probability"));
        }
        Rule::BestNetUplift { min_net_value } if !min_net_value.is_finite() => {
            return Err("min_net_value must be finite".into());
        }
        _ => {}
    }
    if !matches!(card.rule, Rule::BestNetUplift { .. }) {
        return Ok(None);
    }
    let schema = InputSchema::new(card.features.clone()).map_err(|e| e.to_string())?;
    if models.len() != arms {
        return Err(format!("{} models for {arms} arms", models.len()));
    }
    for (a, m) in models.iter().enumerate() {
        m.validate()
            .map_err(|e| format!("model of arm {}: {e}", card.arms[a]))?;
        if m.num_features() != schema.features.len() {
            return Err(format!(
                "model of arm {} reads {} features, the card lists {}",
                card.arms[a],
                m.num_features(),
                schema.features.len()
            ));
        }
    }
    Ok(Some(schema))
}

/// Writes a policy into `dir` (created; must not exist yet).
pub fn save(
    dir: &Path,
    mut card: PolicyCard,
    models: Vec<churn_gbdt::Model>,
) -> Result<PathBuf, ModelError> {
    check(&card, &models).map_err(ModelError::Invalid)?;
    if dir.exists() {
        return Err(ModelError::Exists(dir.to_owned()));
    }
    let bytes = postcard::to_allocvec(&Body {
        format_version: POLICY_FORMAT_VERSION,
        models,
    })
    .map_err(|e| ModelError::Encode(e.to_string()))?;
    card.format_version = POLICY_FORMAT_VERSION;
    card.sha256 = sha256_hex(&bytes);
    let json =
        serde_json::to_string_pretty(&card).map_err(|e| ModelError::Encode(e.to_string()))?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    churn_core::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    let staging = parent.join(format!(
        ".{}.partial",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("policy")
    ));
    let _ = std::fs::remove_dir_all(&staging);
    churn_core::create_dir_all(&staging).map_err(|e| io_error(&staging, e))?;
    std::fs::write(staging.join("policy.bin"), &bytes).map_err(|e| io_error(&staging, e))?;
    std::fs::write(staging.join("policy.json"), json + "\n").map_err(|e| io_error(&staging, e))?;
    churn_core::publish_dir(&staging, dir).map_err(|e| io_error(dir, e))?;
    Ok(dir.to_owned())
}

/// Loads and checks a policy directory: card, format version, checksum,
/// decodable models consistent with the card.
pub fn load(dir: &Path) -> Result<UpliftPolicy, ModelError> {
    let card_path = dir.join("policy.json");
    let card: PolicyCard = read_card(&card_path, "policy card")?;
    check_format(&card_path, card.format_version, POLICY_FORMAT_VERSION)?;
    let bin_path = dir.join("policy.bin");
    let body: Body = read_body(&bin_path, &card.sha256, "policy")?;
    check_format(&bin_path, body.format_version, POLICY_FORMAT_VERSION)?;
    let schema = check(&card, &body.models).map_err(|reason| ModelError::Corrupt {
        path: dir.to_owned(),
        reason,
    })?;
    Ok(UpliftPolicy {
        predictors: body.models.iter().map(Predictor::new).collect(),
        card,
        schema,
    })
}

impl UpliftPolicy {
    pub fn card(&self) -> &PolicyCard {
        &self.card
    }

    /// The features its models read, when its rule uses models: the served
    /// model must provide the same (by name) for the policy to run.
    pub fn schema(&self) -> Option<&InputSchema> {
        self.schema.as_ref()
    }

    /// Checks that a model with input `schema` provides the features this
    /// policy's models read (same names, kinds and order), so that its inputs
    /// can be passed on as they are.
    pub fn check_inputs(&self, schema: &InputSchema) -> Result<(), ModelError> {
        let Some(needs) = &self.schema else {
            return Ok(());
        };
        let wanted: Vec<(&str, crate::Kind)> = needs
            .features
            .iter()
            .map(|f| (f.name.as_str(), f.kind))
            .collect();
        schema
            .require(&wanted)
            .map_err(|e| ModelError::SchemaMismatch(format!("policy {}: {e}", self.id())))
    }

    fn action(&self, arm: usize) -> String {
        if arm == 0 {
            NO_ACTION.to_owned()
        } else {
            self.card.arms[arm].clone()
        }
    }

    /// Modelled churn probability under each arm for one learner.
    pub fn arm_probabilities(&self, case: &Case<'_>) -> Option<Vec<f64>> {
        let schema = self.schema.as_ref()?;
        let mut row = Vec::with_capacity(schema.features.len());
        schema.encode_codes(&case.input, &mut row);
        Some(
            self.predictors
                .iter()
                .map(|p| p.predict_proba(&row))
                .collect(),
        )
    }
}

impl Policy for UpliftPolicy {
    fn id(&self) -> String {
        format!("{}@{}", self.card.name, self.card.version)
    }

    fn actions(&self) -> Vec<String> {
        (0..self.card.arms.len()).map(|a| self.action(a)).collect()
    }

    fn suggest(&self, case: &Case<'_>) -> Suggestion {
        let card = &self.card;
        let (arm, reason) = match card.rule {
            Rule::Nobody => (
                0,
                "the experiment found no intervention worth its cost".to_owned(),
            ),
            Rule::Everyone { arm } => (
                arm,
                format!(
                    "{} for everyone: it paid for itself in the experiment",
                    card.arms[arm]
                ),
            ),
            Rule::RiskAtLeast { threshold, arm } => {
                let p = case.prediction.probability;
                if p >= threshold {
                    (
                        arm,
                        format!(
                            "churn risk {:.0}% ≥ {:.0}%: {}",
                            100.0 * p,
                            100.0 * threshold,
                            card.arms[arm]
                        ),
                    )
                } else {
                    (
                        0,
                        format!(
                            "churn risk {:.0}% below the {:.0}% threshold",
                            100.0 * p,
                            100.0 * threshold
                        ),
                    )
                }
            }
            Rule::BestNetUplift { min_net_value } => match self.arm_probabilities(case) {
                Some(p) => {
                    let (best, net) = (1..p.len()).fold((0, 0.0), |best, a| {
                        let net = card.learner_value * (p[0] - p[a]) - card.costs[a];
                        if net > best.1 { (a, net) } else { best }
                    });
                    if best != 0 && net >= min_net_value {
                        (
                            best,
                            format!(
                                "{} is modelled to cut churn from {:.0}% to {:.0}% (net value {net:.1})",
                                card.arms[best],
                                100.0 * p[0],
                                100.0 * p[best]
                            ),
                        )
                    } else {
                        (
                            0,
                            "no intervention is modelled to be worth its cost".to_owned(),
                        )
                    }
                }
                None => (0, "no uplift models".to_owned()),
            },
        };
        Suggestion {
            action: self.action(arm),
            reason,
            policy: self.id(),
            propensity: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Prediction;
    use crate::schema::{Input, Kind};

    /// A model that predicts `p` for every row of one numeric feature `x`.
    fn constant(p: f64) -> churn_gbdt::Model {
        churn_gbdt::Model {
            trees: vec![churn_gbdt::Tree::constant((p / (1.0 - p)).ln(), 100.0)],
            feature_names: vec!["x".into()],
            feature_kinds: vec![churn_gbdt::FeatureKind::Numeric],
            sigmoid: 1.0,
            best_iteration: None,
        }
    }

    fn card(rule: Rule) -> PolicyCard {
        PolicyCard {
            format_version: 0,
            name: "exp-policy".into(),
            version: "1".into(),
            source: serde_json::json!({}),
            arms: vec!["control".into(), "coupon".into(), "call".into()],
            costs: vec![0.0, 5.0, 20.0],
            learner_value: 100.0,
            rule,
            features: vec![InputFeature {
                name: "x".into(),
                kind: Kind::Numeric,
                description: String::new(),
                categories: Vec::new(),
            }],
            sha256: String::new(),
        }
    }

    fn suggest(policy: &UpliftPolicy, probability: f64) -> Suggestion {
        let schema = InputSchema::new(card(Rule::Nobody).features).unwrap();
        let prediction = Prediction {
            probability,
            margin: 0.0,
            base_value: 0.0,
            contributions: vec![0.0],
        };
        policy.suggest(&Case {
            schema: &schema,
            input: Input {
                numeric: &[1.0],
                categorical: &[],
            },
            prediction: &prediction,
        })
    }

    #[test]
    fn the_best_net_arm_is_chosen_and_a_threshold_can_veto_it() {
        let dir = tempfile::tempdir().unwrap();
        // Churn 50% untreated, 40% with the coupon (net 100 × 0.1 − 5 = 5),
        // 20% with a call (net 100 × 0.3 − 20 = 10): the call wins.
        let models = || vec![constant(0.5), constant(0.4), constant(0.2)];
        save(
            &dir.path().join("a"),
            card(Rule::BestNetUplift { min_net_value: 0.0 }),
            models(),
        )
        .unwrap();
        let policy = load(&dir.path().join("a")).unwrap();
        let chosen = suggest(&policy, 0.3);
        assert_eq!((chosen.action.as_str(), chosen.propensity), ("call", 1.0));
        assert_eq!(chosen.policy, "exp-policy@1");
        assert_eq!(policy.actions(), vec!["none", "coupon", "call"]);
        save(
            &dir.path().join("b"),
            card(Rule::BestNetUplift {
                min_net_value: 10.5,
            }),
            models(),
        )
        .unwrap();
        assert_eq!(
            suggest(&load(&dir.path().join("b")).unwrap(), 0.3).action,
            "none"
        );
        // A risk rule reads the served probability.
        save(
            &dir.path().join("c"),
            card(Rule::RiskAtLeast {
                threshold: 0.4,
                arm: 1,
            }),
            Vec::new(),
        )
        .unwrap();
        let risk = load(&dir.path().join("c")).unwrap();
        assert_eq!(suggest(&risk, 0.45).action, "coupon");
        assert_eq!(suggest(&risk, 0.35).action, "none");
    }

    #[test]
    fn bad_policies_are_refused_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let one = vec![constant(0.5)];
        let err = save(
            &dir.path().join("a"),
            card(Rule::BestNetUplift { min_net_value: 0.0 }),
            one,
        )
        .unwrap_err();
        assert!(err.to_string().contains("1 models for 3 arms"), "{err}");
        assert!(
            save(
                &dir.path().join("b"),
                card(Rule::Everyone { arm: 0 }),
                Vec::new()
            )
            .is_err()
        );
        let path = dir.path().join("c");
        save(&path, card(Rule::Everyone { arm: 2 }), Vec::new()).unwrap();
        std::fs::write(path.join("policy.bin"), b"garbage").unwrap();
        let err = load(&path).err().unwrap();
        assert!(err.to_string().contains("policy.bin"), "{err}");
        // The served model must read the policy's features.
        let uplift = dir.path().join("d");
        save(
            &uplift,
            card(Rule::BestNetUplift { min_net_value: 0.0 }),
            vec![constant(0.5), constant(0.4), constant(0.2)],
        )
        .unwrap();
        let other = InputSchema::new(vec![InputFeature {
            name: "y".into(),
            kind: Kind::Numeric,
            description: String::new(),
            categories: Vec::new(),
        }])
        .unwrap();
        assert!(load(&uplift).unwrap().check_inputs(&other).is_err());
    }
}
