//! The table `churn predict` writes: one row per scored learner with its
//! probability, risk band, top factors, suggested action and the categories
//! the model never saw (read as missing).

use std::collections::BTreeMap;
use std::io::Write;

use churn_core::format_timestamp;

use crate::answer::Answer;
use crate::schema::{Input, InputSchema};

/// One learner's row.
pub struct PredictionRow<'a> {
    pub learner_id: &'a str,
    pub as_of: i64,
    pub answer: &'a Answer,
    /// `(feature, value)` pairs outside the model's vocabularies
    /// ([`InputSchema::unseen`]).
    pub unseen: Vec<(&'a str, &'a str)>,
}

impl<'a> PredictionRow<'a> {
    /// The row of `answer`, with the unseen categories of `input`.
    pub fn new(
        learner_id: &'a str,
        as_of: i64,
        answer: &'a Answer,
        schema: &'a InputSchema,
        input: &Input<'a>,
    ) -> Self {
        PredictionRow {
            learner_id,
            as_of,
            answer,
            unseen: schema.unseen(input),
        }
    }
}

/// Writes the rows as CSV with the top `top_k` factors (4 columns each).
pub fn write(w: impl Write, rows: &[PredictionRow<'_>], top_k: usize) -> csv::Result<()> {
    let mut writer = csv::Writer::from_writer(w);
    let mut header = vec![
        "learner_id".to_owned(),
        "as_of".into(),
        "churn_probability".into(),
        "risk_band".into(),
        "margin".into(),
    ];
    for k in 1..=top_k {
        for part in ["feature", "value", "contribution", "description"] {
            header.push(format!("factor_{k}_{part}"));
        }
    }
    header.extend([
        "action".into(),
        "reason".into(),
        "policy".into(),
        "unseen_categories".into(),
    ]);
    writer.write_record(&header)?;
    for r in rows {
        let a = r.answer;
        let mut row = vec![
            r.learner_id.to_owned(),
            format_timestamp(r.as_of),
            format!("{:.6}", a.churn_probability),
            a.risk_band.name().to_owned(),
            format!("{:.6}", a.margin),
        ];
        for k in 0..top_k {
            match a.top_factors.get(k) {
                Some(f) => row.extend([
                    f.feature.clone(),
                    f.value.to_string(),
                    format!("{:.6}", f.contribution),
                    f.description.clone(),
                ]),
                None => row.extend(std::iter::repeat_n(String::new(), 4)),
            }
        }
        let unseen: Vec<String> = r.unseen.iter().map(|(f, v)| format!("{f}={v}")).collect();
        row.extend([
            a.suggested_action.action.clone(),
            a.suggested_action.reason.clone(),
            a.suggested_action.policy.clone(),
            unseen.join(";"),
        ]);
        writer.write_record(&row)?;
    }
    writer.flush()?;
    Ok(())
}

/// What a person reads after scoring: rows per risk band, the suggested
/// actions (by the policy `policy_id`) with their counts, and the unseen
/// categories with the rows holding them, when there are any.
pub fn summary(rows: &[PredictionRow<'_>], policy_id: &str) -> String {
    let mut bands = [0usize; 3];
    let mut actions = BTreeMap::<&str, usize>::new();
    let mut unseen = BTreeMap::<String, usize>::new();
    for r in rows {
        bands[r.answer.risk_band as usize] += 1;
        *actions
            .entry(r.answer.suggested_action.action.as_str())
            .or_default() += 1;
        for (feature, value) in &r.unseen {
            *unseen.entry(format!("{feature}={value}")).or_default() += 1;
        }
    }
    let mut text = format!(
        "risk bands: low {}  medium {}  high {}\nsuggested ({policy_id}): {}",
        bands[0],
        bands[1],
        bands[2],
        actions
            .iter()
            .map(|(a, n)| format!("{a} {n}"))
            .collect::<Vec<_>>()
            .join("  ")
    );
    if !unseen.is_empty() {
        text.push_str(&format!(
            "\ncategories the model never saw, read as missing (column unseen_categories): {}",
            unseen
                .iter()
                .map(|(p, n)| format!("{p} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::RiskBand;
    use crate::policy::Suggestion;

    fn answer(p: f64, band: RiskBand, action: &str) -> Answer {
        Answer {
            churn_probability: p,
            risk_band: band,
            margin: 0.5,
            base_value: 0.0,
            contribution_scale: "log_odds",
            top_factors: Vec::new(),
            suggested_action: Suggestion {
                action: action.into(),
                reason: "why".into(),
                policy: "playbook@default".into(),
                propensity: 1.0,
            },
            prediction: crate::Prediction {
                probability: p,
                margin: 0.5,
                base_value: 0.0,
                contributions: Vec::new(),
            },
        }
    }

    #[test]
    fn rows_carry_their_unseen_categories_and_the_summary_counts_them() {
        let (a, b) = (
            answer(0.7, RiskBand::High, "call"),
            answer(0.1, RiskBand::Low, "none"),
        );
        let rows = [
            PredictionRow {
                learner_id: "L1",
                as_of: 0,
                answer: &a,
                unseen: vec![("plan", "Pro"), ("device", "tablet")],
            },
            PredictionRow {
                learner_id: "L2",
                as_of: 0,
                answer: &b,
                unseen: Vec::new(),
            },
        ];
        let mut bytes = Vec::new();
        write(&mut bytes, &rows, 1).expect("written");
        let text = String::from_utf8(bytes).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with(",action,reason,policy,unseen_categories"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("L1,1970-01-01T00:00:00Z,0.700000,high,0.500000,,,,,call,"),
            "{}",
            lines[1]
        );
        assert!(
            lines[1].ends_with(",plan=Pro;device=tablet"),
            "{}",
            lines[1]
        );
        assert!(lines[2].ends_with(",playbook@default,"), "{}", lines[2]);
        assert_eq!(
            summary(&rows, "playbook@default"),
            "risk bands: low 1  medium 0  high 1\nsuggested (playbook@default): call 1  none 1\n\
             categories the model never saw, read as missing (column unseen_categories): device=tablet (1), plan=Pro (1)"
        );
    }
}
