//! The candidate targeting policies `churn ab` compares (DESIGN.md): treat
//! no one, treat everyone with one arm, the riskiest k% with one arm, and by
//! modelled uplift net of cost (everyone worth it, or the top k% of them).

use churn_model::uplift_policy::Rule;

use crate::AbError;
use crate::policy_value::{Candidate, Economics};

/// The shares of learners the top-k candidates treat.
pub const TOP_SHARES: [f64; 2] = [0.2, 0.5];

/// Per learner, the arm with the highest modelled net value (learner value ×
/// churn reduction − cost) and that value; control (arm 0, value 0) when no
/// arm is worth its cost. `outcome[i * arms + a]` = P(churn | arm a).
pub fn best_arms(outcome: &[f64], arms: usize, economics: &Economics) -> Vec<(usize, f64)> {
    outcome
        .chunks_exact(arms)
        .map(|p| {
            (1..arms).fold((0, 0.0), |best, a| {
                let net = economics.learner_value * (p[0] - p[a]) - economics.costs[a];
                if net > best.1 { (a, net) } else { best }
            })
        })
        .collect()
}

/// The indices of the top `share` of `scores` (highest first, ties to the
/// earlier learner).
fn top(scores: &[f64], share: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate((scores.len() as f64 * share).round() as usize);
    order
}

/// The candidates, named with the arm names (`names[0]` = control): treat
/// all with each arm; the top k% by `risk` with the arm of highest mean
/// modelled net value; by modelled net uplift, everyone with a positive net
/// value and the top k% of them.
pub fn candidates(
    names: &[String],
    risk: Option<&[f64]>,
    outcome: &[f64],
    economics: &Economics,
) -> Result<Vec<Candidate>, AbError> {
    let arms = names.len();
    if arms < 2 || !outcome.len().is_multiple_of(arms) || economics.costs.len() != arms {
        return Err(AbError::Invalid(format!(
            "{arms} arms, {} outcome values and {} costs do not fit together",
            outcome.len(),
            economics.costs.len()
        )));
    }
    let n = outcome.len() / arms;
    if risk.is_some_and(|r| r.len() != n) {
        return Err(AbError::Invalid(format!(
            "{n} learners but a different number of risk scores"
        )));
    }
    let mut out = Vec::new();
    for (a, name) in names.iter().enumerate().skip(1) {
        out.push(Candidate {
            name: format!("all→{name}"),
            choices: vec![a; n],
            rule: Some(Rule::Everyone { arm: a }),
        });
    }
    if let Some(risk) = risk {
        // One arm for the riskiest: the one the models value most on average.
        // (One per arm would add noisy candidates and a winner's curse.)
        let a = (1..arms)
            .map(|a| {
                let net: f64 = outcome
                    .chunks_exact(arms)
                    .map(|p| economics.learner_value * (p[0] - p[a]) - economics.costs[a])
                    .sum();
                (a, net)
            })
            .fold(
                (1, f64::MIN),
                |best, (a, net)| if net > best.1 { (a, net) } else { best },
            )
            .0;
        for share in TOP_SHARES {
            let mut choices = vec![0; n];
            let chosen = top(risk, share);
            for &i in &chosen {
                choices[i] = a;
            }
            let threshold = chosen.iter().map(|&i| risk[i]).fold(1.0, f64::min);
            out.push(Candidate {
                name: format!("top{:.0}%risk→{}", 100.0 * share, names[a]),
                choices,
                rule: Some(Rule::RiskAtLeast { threshold, arm: a }),
            });
        }
    }
    let best = best_arms(outcome, arms, economics);
    out.push(Candidate {
        name: "uplift→best_arm".into(),
        choices: best.iter().map(|b| b.0).collect(),
        rule: Some(Rule::BestNetUplift { min_net_value: 0.0 }),
    });
    let net: Vec<f64> = best.iter().map(|b| b.1).collect();
    for share in TOP_SHARES {
        let mut choices = vec![0; n];
        let chosen = top(&net, share);
        for &i in &chosen {
            choices[i] = best[i].0;
        }
        let min_net_value = chosen
            .iter()
            .map(|&i| net[i])
            .fold(f64::MAX, f64::min)
            .max(0.0);
        out.push(Candidate {
            name: format!("top{:.0}%uplift→best_arm", 100.0 * share),
            choices,
            rule: Some(Rule::BestNetUplift {
                min_net_value: if chosen.is_empty() {
                    f64::MAX
                } else {
                    min_net_value
                },
            }),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_arm_weighs_reduction_against_cost() {
        let economics = Economics {
            learner_value: 100.0,
            costs: vec![0.0, 5.0, 20.0],
        };
        // Learner 0: arm 1 saves 10 pp (net 5), arm 2 saves 30 pp (net 10).
        // Learner 1: nothing saves enough to pay for itself.
        let outcome = [0.5, 0.4, 0.2, 0.3, 0.29, 0.25];
        assert_eq!(
            best_arms(&outcome, 3, &economics),
            vec![(2, 10.0), (0, 0.0)]
        );
        let names: Vec<String> = ["control", "a", "b"].map(String::from).to_vec();
        let c = candidates(&names, Some(&[0.9, 0.1]), &outcome, &economics).unwrap();
        let by_name = |n: &str| c.iter().find(|c| c.name == n).unwrap().choices.clone();
        assert_eq!(by_name("all→b"), vec![2, 2]);
        // Arm a's total modelled net value (5 − 4) beats arm b's (10 − 15).
        assert_eq!(by_name("top50%risk→a"), vec![1, 0]);
        assert!(c.iter().all(|c| c.name != "top50%risk→b"));
        assert_eq!(by_name("uplift→best_arm"), vec![2, 0]);
        assert!(candidates(&names, Some(&[0.9]), &outcome, &economics).is_err());
    }
}
