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

/// The action that means "do nothing".
pub const NO_ACTION: &str = "none";

/// A rule that turns a scored learner into a suggested intervention.
pub trait Policy: Send + Sync {
    /// `name@version`, as logged with each suggestion.
    fn id(&self) -> String;
    /// The actions this policy can suggest (including `none`).
    fn actions(&self) -> Vec<String>;
    /// The suggestion for one learner.
    fn suggest(&self, case: &Case<'_>) -> Suggestion;
    /// Whether this learner may receive an exploratory action (see [`Explore`]).
    fn eligible(&self, _case: &Case<'_>) -> bool {
        true
    }
}

/// ε-exploration around a policy: for an eligible learner, with probability
/// `epsilon` the action is drawn uniformly from the policy's actions instead.
/// The suggestion's propensity is the probability that this action was the
/// one returned — `(1 − ε) + ε/|A|` for the policy's own choice, `ε/|A|` for
/// any other — so experiments and off-policy evaluation on the log are unbiased.
pub struct Explore<P> {
    /// `inner's id+explore(ε)`, made once: every answer carries it.
    id: String,
    inner: P,
    epsilon: f64,
    actions: Vec<String>,
    seed: u64,
    draws: std::sync::atomic::AtomicU64,
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn id(&self) -> String {
        (**self).id()
    }
    fn actions(&self) -> Vec<String> {
        (**self).actions()
    }
    fn suggest(&self, case: &Case<'_>) -> Suggestion {
        (**self).suggest(case)
    }
    fn eligible(&self, case: &Case<'_>) -> bool {
        (**self).eligible(case)
    }
}

/// SplitMix64: the draw `k` of stream `seed`, as a uniform number in [0, 1).
fn uniform(seed: u64, k: u64) -> f64 {
    let mut z = seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl<P: Policy> Explore<P> {
    /// `epsilon` in [0, 1]; draws come from `seed`, one stream per process.
    pub fn new(inner: P, epsilon: f64, seed: u64) -> Result<Self, crate::ModelError> {
        if !(0.0..=1.0).contains(&epsilon) {
            return Err(crate::ModelError::Invalid(format!(
                "exploration epsilon must be in [0, 1], got {epsilon}"
            )));
        }
        let actions = inner.actions();
        let id = if epsilon > 0.0 {
            format!("{}+explore({epsilon})", inner.id())
        } else {
            inner.id()
        };
        Ok(Explore {
            id,
            inner,
            epsilon,
            actions,
            seed,
            draws: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The wrapped policy.
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: Policy> Policy for Explore<P> {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn actions(&self) -> Vec<String> {
        self.actions.clone()
    }

    fn suggest(&self, case: &Case<'_>) -> Suggestion {
        let mut chosen = self.inner.suggest(case);
        if self.epsilon == 0.0 || self.actions.is_empty() {
            return chosen;
        }
        // The deployed policy answers for every learner, explored or not, so
        // that a log reads back as one experiment.
        chosen.policy = self.id();
        if !self.inner.eligible(case) {
            return chosen;
        }
        let k = self
            .draws
            .fetch_add(2, std::sync::atomic::Ordering::Relaxed);
        let share = self.epsilon / self.actions.len() as f64;
        if uniform(self.seed, k) < self.epsilon {
            let pick = ((uniform(self.seed, k + 1) * self.actions.len() as f64) as usize)
                .min(self.actions.len() - 1);
            if self.actions[pick] != chosen.action {
                chosen.action = self.actions[pick].clone();
                chosen.reason = format!("exploration: {} drawn at random", chosen.action);
                chosen.propensity = share;
                return chosen;
            }
        }
        chosen.propensity = (1.0 - self.epsilon) + share;
        chosen
    }

    fn eligible(&self, case: &Case<'_>) -> bool {
        self.inner.eligible(case)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Always;
    impl Policy for Always {
        fn id(&self) -> String {
            "always@1".into()
        }
        fn actions(&self) -> Vec<String> {
            vec!["a".into(), "b".into(), "none".into()]
        }
        fn suggest(&self, _: &Case<'_>) -> Suggestion {
            Suggestion {
                action: "a".into(),
                reason: "r".into(),
                policy: self.id(),
                propensity: 1.0,
            }
        }
    }

    #[test]
    fn exploration_frequencies_match_the_propensities_it_reports() {
        let schema = crate::schema::InputSchema::new(Vec::new()).unwrap();
        let prediction = crate::model::Prediction {
            probability: 0.5,
            margin: 0.0,
            base_value: 0.0,
            contributions: Vec::new(),
        };
        let case = Case {
            schema: &schema,
            input: crate::schema::Input {
                numeric: &[],
                categorical: &[],
            },
            prediction: &prediction,
        };
        let explore = Explore::new(Always, 0.3, 11).unwrap();
        let n = 60_000;
        let mut counts = std::collections::BTreeMap::<String, (usize, f64)>::new();
        for _ in 0..n {
            let s = explore.suggest(&case);
            let e = counts.entry(s.action).or_default();
            e.0 += 1;
            e.1 = s.propensity;
        }
        // a: 0.7 + 0.1; b and none: 0.1 each.
        for (action, (count, propensity)) in &counts {
            let share = *count as f64 / n as f64;
            let sd = (propensity * (1.0 - propensity) / n as f64).sqrt();
            assert!(
                (share - propensity).abs() < 4.0 * sd,
                "{action}: {share} vs {propensity}"
            );
        }
        assert!((counts["a"].1 - 0.8).abs() < 1e-12);
        assert!(Explore::new(Always, 1.5, 1).is_err());
        let off = Explore::new(Always, 0.0, 1).unwrap().suggest(&case);
        assert_eq!((off.action.as_str(), off.propensity), ("a", 1.0));
    }
}
