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

/// The header of the file with the top `top_k` factors (4 columns each).
pub fn header(top_k: usize) -> Vec<String> {
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
    header
}

/// The fields of one row, in [`header`]'s order.
pub fn record(r: &PredictionRow<'_>, top_k: usize) -> Vec<String> {
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
    row
}

/// Writes the rows as CSV with the top `top_k` factors (4 columns each).
pub fn write(w: impl Write, rows: &[PredictionRow<'_>], top_k: usize) -> csv::Result<()> {
    let mut writer = csv::Writer::from_writer(w);
    writer.write_record(header(top_k))?;
    for r in rows {
        writer.write_record(record(r, top_k))?;
    }
    writer.flush()?;
    Ok(())
}

/// One row as the CSV line [`write`] would give it (newline included), for
/// callers that keep rendered rows instead of answers.
pub fn line(r: &PredictionRow<'_>, top_k: usize) -> csv::Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .buffer_capacity(512)
        .from_writer(Vec::new());
    writer.write_record(record(r, top_k))?;
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(std::io::Error::other(e.error().to_string())))
}

/// The counts [`summary`] reports, added up row by row.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    bands: [usize; 3],
    actions: BTreeMap<String, usize>,
    unseen: BTreeMap<String, usize>,
}

impl Tally {
    /// Counts one row.
    pub fn add(&mut self, r: &PredictionRow<'_>) {
        self.bands[r.answer.risk_band as usize] += 1;
        *self
            .actions
            .entry(r.answer.suggested_action.action.clone())
            .or_default() += 1;
        for (feature, value) in &r.unseen {
            *self.unseen.entry(format!("{feature}={value}")).or_default() += 1;
        }
    }

    /// Adds another tally's counts.
    pub fn merge(&mut self, other: Tally) {
        for (mine, theirs) in self.bands.iter_mut().zip(other.bands) {
            *mine += theirs;
        }
        for (action, n) in other.actions {
            *self.actions.entry(action).or_default() += n;
        }
        for (pair, n) in other.unseen {
            *self.unseen.entry(pair).or_default() += n;
        }
    }

    /// What a person reads after scoring: rows per risk band, the suggested
    /// actions (by the policy `policy_id`) with their counts, and the unseen
    /// categories with the rows holding them, when there are any.
    pub fn text(&self, policy_id: &str) -> String {
        let mut text = format!(
            "risk bands: low {}  medium {}  high {}\nsuggested ({policy_id}): {}",
            self.bands[0],
            self.bands[1],
            self.bands[2],
            self.actions
                .iter()
                .map(|(a, n)| format!("{a} {n}"))
                .collect::<Vec<_>>()
                .join("  ")
        );
        if !self.unseen.is_empty() {
            text.push_str(&format!(
                "\ncategories the model never saw, read as missing (column unseen_categories): {}",
                self.unseen
                    .iter()
                    .map(|(p, n)| format!("{p} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        text
    }
}

/// [`Tally::text`] of `rows`.
pub fn summary(rows: &[PredictionRow<'_>], policy_id: &str) -> String {
    let mut tally = Tally::default();
    for r in rows {
        tally.add(r);
    }
    tally.text(policy_id)
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
        // Rows rendered one by one are the file's lines; tallies merge.
        let mut by_line = Vec::new();
        by_line.extend_from_slice(lines[0].as_bytes());
        by_line.push(b'\n');
        let mut tally = Tally::default();
        for r in &rows {
            by_line.extend(line(r, 1).expect("rendered"));
            let mut one = Tally::default();
            one.add(r);
            tally.merge(one);
        }
        assert_eq!(String::from_utf8(by_line).expect("utf-8"), text);
        assert_eq!(
            tally.text("playbook@default"),
            summary(&rows, "playbook@default")
        );
        assert_eq!(
            summary(&rows, "playbook@default"),
            "risk bands: low 1  medium 0  high 1\nsuggested (playbook@default): call 1  none 1\n\
             categories the model never saw, read as missing (column unseen_categories): device=tablet (1), plan=Pro (1)"
        );
    }
}
