//! The server's logs joined with what later events reveal: each logged
//! prediction's outcome is the churn label at the time it applies (its
//! `as_of`), read from the events as training reads it, so `churn monitor` and
//! `churn evaluate` agree on the same rows.

use churn_core::{Dataset, LabelDefinition};
use churn_features::Grouped;
use churn_features::label::{LabelStatus, finished_at, label_status_in_calendar};
use churn_model::logs::{LoggedFeatures, LoggedPrediction, LoggedValue};

use crate::{FeatureObservation, Observation, Outcome};

/// One observation per logged prediction, in the log's order: its outcome
/// (by the `label` definition, at the label `horizon` in ms), and the
/// learner's plan, channel and device as segments.
pub fn observations(
    dataset: &mut Dataset,
    logged: &[LoggedPrediction],
    label: LabelDefinition,
    horizon: i64,
) -> Vec<Observation> {
    let data_end = dataset.last_event_time().unwrap_or(i64::MIN);
    // The course calendar, when the data has one: a finished learner's
    // prediction has no outcome to judge it by (as in training).
    let course_ends: Option<Vec<Option<i64>>> = dataset
        .courses
        .iter()
        .any(|c| c.ends_at.is_some())
        .then(|| dataset.courses.iter().map(|c| c.ends_at).collect());
    let grouped = Grouped::new(dataset);
    let dataset = grouped.dataset();
    logged
        .iter()
        .filter_map(|l| {
            let learner = dataset.learners.get(l.learner as usize)?;
            let events = grouped.events_of(l.learner);
            let finished = course_ends
                .as_deref()
                .and_then(|ends| finished_at(events, l.at, ends));
            let status = label_status_in_calendar(
                label,
                learner.signup_at,
                events,
                l.at,
                horizon,
                data_end,
                finished,
            );
            let outcome = match status {
                LabelStatus::Labelled { churned: true } => Outcome::Churned,
                LabelStatus::Labelled { churned: false } => Outcome::Stayed,
                LabelStatus::Unlabelled => Outcome::Pending,
                LabelStatus::NotEligible(_) => Outcome::NotEligible,
            };
            Some(Observation {
                time: l.at,
                model: l.line.model.label(),
                role: l.line.model.role.clone(),
                probability: l.line.churn_probability,
                outcome,
                segments: vec![
                    ("plan".into(), learner.plan.clone()),
                    ("channel".into(), learner.acquisition_channel.clone()),
                    (
                        "device".into(),
                        learner.device.clone().unwrap_or_else(|| "(missing)".into()),
                    ),
                ],
            })
        })
        .collect()
}

/// A feature-log line as the drift computation reads it: a number is a
/// numeric value, a string a category, `null` missing for either kind.
pub fn feature_observation(logged: &LoggedFeatures) -> FeatureObservation {
    let mut observation = FeatureObservation {
        time: logged.at,
        model: logged.line.model.label(),
        numeric: Default::default(),
        categorical: Default::default(),
    };
    for (name, value) in &logged.line.features {
        match value {
            Some(LoggedValue::Number(v)) => {
                observation.numeric.insert(name.clone(), *v);
            }
            Some(LoggedValue::Category(c)) => {
                observation
                    .categorical
                    .insert(name.clone(), Some(c.clone()));
            }
            None => {
                observation.numeric.insert(name.clone(), f64::NAN);
                observation.categorical.insert(name.clone(), None);
            }
        }
    }
    observation
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_core::{DAY_MS, Event, EventType, Learner};
    use churn_model::logs::{FeatureLine, LoggedModel, PredictionLine};

    fn learner(id: &str) -> Learner {
        Learner {
            id: id.into(),
            signup_at: 0,
            plan: "monthly".into(),
            acquisition_channel: "organic".into(),
            device: None,
            ..Learner::default()
        }
    }

    fn login(learner: u32, day: i64) -> Event {
        Event::new(day * DAY_MS, learner, EventType::Login)
    }

    fn model() -> LoggedModel {
        LoggedModel {
            name: "m".into(),
            version: "1".into(),
            role: "champion".into(),
        }
    }

    fn prediction(learner: u32, day: i64) -> LoggedPrediction {
        let line: PredictionLine = serde_json::from_value(serde_json::json!({
            "time": "2026-06-01T00:00:00Z", "request_id": "r", "learner_id": "x", "as_of": null,
            "model": {"name": "m", "version": "1", "role": "champion"},
            "churn_probability": 0.4, "risk_band": "medium", "top_factors": [],
            "suggested_action": {"action": "none", "reason": "", "policy": "p", "propensity": 1.0},
        }))
        .expect("a prediction line");
        LoggedPrediction {
            learner,
            at: day * DAY_MS,
            line,
        }
    }

    #[test]
    fn each_prediction_gets_the_label_at_its_time() {
        // Learner 0 comes back on day 20; learner 1 is never seen after day 5.
        let mut dataset = Dataset {
            learners: vec![learner("A"), learner("B")],
            events: vec![
                login(0, 1),
                login(1, 5),
                login(0, 20),
                login(0, 75),
                login(0, 90),
            ],
            ..Dataset::default()
        };
        let logged = [prediction(0, 10), prediction(1, 10), prediction(0, 80)];
        let got: Vec<Outcome> =
            observations(&mut dataset, &logged, LabelDefinition::Either, 30 * DAY_MS)
                .iter()
                .map(|o| o.outcome)
                .collect();
        // Day 80's horizon runs past the data's last event (day 90).
        assert_eq!(got, [Outcome::Stayed, Outcome::Churned, Outcome::Pending]);
    }

    #[test]
    fn a_prediction_after_the_learners_course_ended_has_no_outcome() {
        // Learner 0's course ends on day 30; learner 1's course never does.
        let in_course = |learner: u32, day: i64, course: u32| {
            let mut e = login(learner, day);
            e.course = course;
            e
        };
        let course = |id: &str, ends_at: Option<i64>| churn_core::Course {
            id: id.into(),
            level: "beginner".into(),
            lessons: 1,
            ends_at,
            starts_at: None,
        };
        let mut dataset = Dataset {
            learners: vec![learner("A"), learner("B")],
            courses: vec![course("C1", Some(30 * DAY_MS)), course("C2", None)],
            events: vec![
                in_course(0, 1, 0),
                in_course(1, 1, 1),
                in_course(0, 25, 0),
                in_course(1, 35, 1),
                login(1, 120),
            ],
            ..Dataset::default()
        };
        let logged = [prediction(0, 10), prediction(0, 40), prediction(1, 40)];
        let got: Vec<Outcome> = observations(
            &mut dataset,
            &logged,
            LabelDefinition::Inactivity,
            30 * DAY_MS,
        )
        .iter()
        .map(|o| o.outcome)
        .collect();
        // Day 10: active before the end (day 25), not churned. Day 40: learner
        // 0 is finished; learner 1 (no end) is quiet until day 120: churned.
        assert_eq!(
            got,
            [Outcome::Stayed, Outcome::NotEligible, Outcome::Churned]
        );
    }

    #[test]
    fn a_null_feature_is_missing_for_either_kind() {
        let line = FeatureLine {
            time: "2026-06-01T00:00:00Z".into(),
            as_of: None,
            model: model(),
            features: [
                ("logins_7d".to_owned(), Some(LoggedValue::Number(3.0))),
                (
                    "plan".to_owned(),
                    Some(LoggedValue::Category("annual".into())),
                ),
                ("device".to_owned(), None),
            ]
            .into_iter()
            .collect(),
        };
        let o = feature_observation(&LoggedFeatures { at: 7, line });
        assert_eq!(o.model, "m@1");
        assert_eq!(o.numeric["logins_7d"], 3.0);
        assert_eq!(o.categorical["plan"].as_deref(), Some("annual"));
        assert!(o.numeric["device"].is_nan() && o.categorical["device"].is_none());
    }
}
