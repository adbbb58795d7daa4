//! One learner's score broken into every feature's contribution, as `churn
//! explain` shows it: a JSON object, or lines for a terminal.

use std::fmt::Write as _;

use churn_core::format_timestamp;
use serde_json::{Value as Json, json};

use crate::{Answer, Input, ModelCard, PreparedModel, Value, answer::value_of};

/// An answer for one learner at one time, with the model that gave it.
pub struct Explanation<'a> {
    pub learner_id: &'a str,
    pub as_of: i64,
    pub card: &'a ModelCard,
    pub model: &'a PreparedModel,
    /// Scored with every feature as a factor.
    pub answer: &'a Answer,
    pub input: &'a Input<'a>,
}

impl Explanation<'_> {
    /// The answer with the learner, the time, the model, every contribution
    /// by name and the `top_k` top factors.
    pub fn json(&self, top_k: usize) -> Result<Json, serde_json::Error> {
        let a = self.answer;
        let mut value = serde_json::to_value(a)?;
        value["learner_id"] = json!(self.learner_id);
        value["as_of"] = json!(format_timestamp(self.as_of));
        value["model"] = json!({"name": self.card.name, "version": self.card.version});
        value["contributions"] = self
            .model
            .schema()
            .names()
            .zip(&a.prediction.contributions)
            .map(|(name, c)| (name.to_owned(), json!(c)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        value["top_factors"] =
            serde_json::to_value(&a.top_factors[..a.top_factors.len().min(top_k)])?;
        Ok(value)
    }

    /// Lines for a terminal: the probability, the suggestion, then the
    /// `top_k` largest contributions and the sum of the rest.
    pub fn text(&self, top_k: usize) -> String {
        let (a, card) = (self.answer, self.card);
        let top_k = top_k.max(1);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{} at {}  ({}@{})",
            self.learner_id,
            format_timestamp(self.as_of),
            card.name,
            card.version
        );
        let _ = writeln!(
            out,
            "churn probability {:.1}%  risk {}  (margin {:+.3} log-odds = base {:+.3} + contributions)",
            100.0 * a.churn_probability,
            a.risk_band.name(),
            a.margin,
            a.base_value
        );
        let s = &a.suggested_action;
        let _ = writeln!(
            out,
            "suggested: {}: {}  [{}]\n",
            s.action, s.reason, s.policy
        );
        let _ = writeln!(
            out,
            "{:<28} {:>12} {:>10}  description",
            "feature", "value", "log-odds"
        );
        let schema = self.model.schema();
        let contributions = &a.prediction.contributions;
        let mut order: Vec<usize> = (0..contributions.len()).collect();
        order.sort_by(|&i, &j| contributions[j].abs().total_cmp(&contributions[i].abs()));
        for &j in order.iter().take(top_k) {
            let _ = writeln!(
                out,
                "{:<28} {:>12} {:>+10.4}  {}",
                schema.features[j].name,
                short(&value_of(self.model, self.input, j)),
                contributions[j],
                schema.features[j].description
            );
        }
        if order.len() > top_k {
            let rest: f64 = order.iter().skip(top_k).map(|&j| contributions[j]).sum();
            let _ = writeln!(
                out,
                "{:<28} {:>12} {:>+10.4}  the other {} features",
                "(rest)",
                "",
                rest,
                order.len() - top_k
            );
        }
        out
    }
}

fn short(value: &Value) -> String {
    match value {
        Value::Number(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Value::Number(v) => format!("{v:.3}"),
        Value::Category(c) => c.clone(),
        Value::Missing => "missing".into(),
    }
}
