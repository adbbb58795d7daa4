//! A learner's profile and events as JSON, checked by the data contract's
//! rules (the rules `churn validate` applies to files): what the store keeps
//! and what the server's raw-event instances read. Names stay names here
//! (event types, course ids); mapping them to a model's indices is the
//! model's business, at prediction time.

use churn_core::{parse_category, parse_event_type, parse_timestamp};
use serde_json::{Map, Value};

/// A field of a JSON request that breaks a contract rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// e.g. `events[7].ts`.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// `at.key`, or `key` at the top.
pub fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// One event as the contract writes it: names, not model indices.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractEvent {
    /// ms since the epoch.
    pub ts: i64,
    pub event_type: String,
    pub course_id: Option<String>,
    /// How many occurrences the row stands for (≥ 1).
    pub count: u32,
    /// NaN = absent, for every measure below.
    pub duration_s: f64,
    pub score: f64,
    pub amount: f64,
    pub latency_ms: f64,
    pub stalls: f64,
}

/// The fields an event may carry.
pub const EVENT_FIELDS: [&str; 9] = [
    "ts",
    "event_type",
    "count",
    "course_id",
    "duration_s",
    "score",
    "amount",
    "latency_ms",
    "stalls",
];

/// The object at `at`, or why not.
pub fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, FieldError> {
    value
        .as_object()
        .ok_or_else(|| FieldError::new(at, format!("{at} must be an object")))
}

/// Refuses keys outside `known`, naming the first.
pub fn refuse_unknown(
    map: &Map<String, Value>,
    known: &[&str],
    at: &str,
) -> Result<(), FieldError> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(FieldError::new(
            join(at, key),
            format!(
                "unknown field {key:?} (expected one of: {})",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// An RFC 3339 timestamp string, in ms.
pub fn timestamp(value: Option<&Value>, field: &str) -> Result<i64, FieldError> {
    match value {
        Some(Value::String(text)) => parse_timestamp(text)
            .map_err(|e| FieldError::new(field, format!("{text:?} is not a timestamp: {e}"))),
        Some(_) => Err(FieldError::new(
            field,
            "must be an RFC 3339 timestamp string",
        )),
        None => Err(FieldError::new(field, "missing")),
    }
}

fn measure(map: &Map<String, Value>, key: &str, at: &str) -> Result<f64, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(f64::NAN),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(FieldError::new(
                join(at, key),
                "must be a finite number ≥ 0",
            )),
        },
        Some(_) => Err(FieldError::new(join(at, key), "must be a number")),
    }
}

/// Reads one event object (its fields in [`EVENT_FIELDS`] plus `extra`,
/// which the caller reads itself), by the contract's rules: a timestamp, a
/// known or well-formed custom type, measures finite and ≥ 0, a score in
/// [0, 1], whole stalls and a whole count ≥ 1.
pub fn event(
    map: &Map<String, Value>,
    at: &str,
    extra: &[&str],
) -> Result<ContractEvent, FieldError> {
    let known: Vec<&str> = EVENT_FIELDS.iter().chain(extra).copied().collect();
    refuse_unknown(map, &known, at)?;
    let ts = timestamp(map.get("ts"), &join(at, "ts"))?;
    let event_type = match map.get("event_type") {
        Some(Value::String(t)) => match parse_event_type(t) {
            Ok(_) => t.clone(),
            Err(err) => return Err(FieldError::new(join(at, "event_type"), err.to_string())),
        },
        _ => return Err(FieldError::new(join(at, "event_type"), "must be a string")),
    };
    let course_id = match map.get("course_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        Some(_) => {
            return Err(FieldError::new(
                join(at, "course_id"),
                "must be a non-empty string",
            ));
        }
    };
    let score = measure(map, "score", at)?;
    if score > 1.0 {
        return Err(FieldError::new(
            join(at, "score"),
            "score must be in [0, 1]",
        ));
    }
    let stalls = measure(map, "stalls", at)?;
    if stalls.is_finite() && stalls.fract() != 0.0 {
        return Err(FieldError::new(
            join(at, "stalls"),
            "stalls must be a whole number",
        ));
    }
    let count = match map.get("count") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .filter(|&c| c >= 1)
            .and_then(|c| u32::try_from(c).ok())
            .ok_or_else(|| {
                FieldError::new(join(at, "count"), "count must be a whole number ≥ 1")
            })?,
    };
    Ok(ContractEvent {
        ts,
        event_type,
        course_id,
        count,
        duration_s: measure(map, "duration_s", at)?,
        score,
        amount: measure(map, "amount", at)?,
        latency_ms: measure(map, "latency_ms", at)?,
        stalls,
    })
}

impl ContractEvent {
    /// One occurrence of `event_type` at `ts`, with no course and no
    /// measures (as [`churn_core::Event::new`] is for indexed events).
    pub fn new(ts: i64, event_type: impl Into<String>) -> ContractEvent {
        ContractEvent {
            ts,
            event_type: event_type.into(),
            course_id: None,
            count: 1,
            duration_s: f64::NAN,
            score: f64::NAN,
            amount: f64::NAN,
            latency_ms: f64::NAN,
            stalls: f64::NAN,
        }
    }

    /// The event with its names resolved to a model's or dataset's indices:
    /// what the feature code reads.
    pub fn to_event(&self, course: u32, event_type: churn_core::EventKind) -> churn_core::Event {
        churn_core::Event {
            ts: self.ts,
            learner: 0,
            course,
            event_type,
            count: self.count,
            duration_s: self.duration_s,
            score: self.score,
            amount: self.amount,
            latency_ms: self.latency_ms,
            stalls: self.stalls,
        }
    }

    /// The event as JSON, the inverse of [`event`] (absent measures are null,
    /// a count of 1 is left out).
    pub fn to_json(&self) -> Value {
        let number = |v: f64| {
            if v.is_nan() {
                Value::Null
            } else {
                serde_json::json!(v)
            }
        };
        let mut map = Map::new();
        map.insert(
            "ts".into(),
            Value::String(churn_core::format_timestamp(self.ts)),
        );
        map.insert("event_type".into(), Value::String(self.event_type.clone()));
        map.insert(
            "course_id".into(),
            self.course_id.clone().map_or(Value::Null, Value::String),
        );
        if self.count != 1 {
            map.insert("count".into(), Value::from(self.count));
        }
        for (key, v) in [
            ("duration_s", self.duration_s),
            ("score", self.score),
            ("amount", self.amount),
            ("latency_ms", self.latency_ms),
            ("stalls", self.stalls),
        ] {
            map.insert(key.into(), number(v));
        }
        Value::Object(map)
    }
}

/// A learner's profile: the contract's `signup_at`, `plan`,
/// `acquisition_channel` and optional `device`, plus any attributes
/// (numbers, strings or null), kept as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnerProfile {
    pub signup_at: i64,
    /// The whole profile object, checked.
    pub json: Map<String, Value>,
}

/// Reads a profile object by the contract's rules.
pub fn profile(value: &Value, at: &str) -> Result<LearnerProfile, FieldError> {
    let map = object(value, at)?;
    let signup_at = timestamp(map.get("signup_at"), &join(at, "signup_at"))?;
    for field in ["plan", "acquisition_channel"] {
        match map.get(field) {
            Some(Value::String(v)) if parse_category(v).is_some() => {}
            _ => {
                return Err(FieldError::new(
                    join(at, field),
                    "must be a non-empty string",
                ));
            }
        }
    }
    for (key, value) in map {
        let ok = match key.as_str() {
            "signup_at" | "plan" | "acquisition_channel" => true,
            _ => {
                matches!(value, Value::Null | Value::String(_))
                    || value.as_f64().is_some_and(f64::is_finite)
            }
        };
        if !ok {
            return Err(FieldError::new(
                join(at, key),
                "an attribute must be a finite number, a string or null",
            ));
        }
    }
    Ok(LearnerProfile {
        signup_at,
        json: map.clone(),
    })
}

/// A learner id: 1 to 256 characters.
pub fn learner_id(value: Option<&Value>, field: &str) -> Result<String, FieldError> {
    match value {
        Some(Value::String(id)) => {
            check_learner_id(id).map_err(|reason| FieldError::new(field, reason))
        }
        Some(_) => Err(FieldError::new(field, "learner_id must be a string")),
        None => Err(FieldError::new(field, "missing field \"learner_id\"")),
    }
}

/// `id` when it is a usable learner id, else why not.
pub fn check_learner_id(id: &str) -> Result<String, String> {
    if id.is_empty() || id.len() > 256 {
        Err("learner_id must be 1 to 256 characters".into())
    } else {
        Ok(id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(value: Value) -> Result<ContractEvent, FieldError> {
        event(object(&value, "e")?, "e", &[])
    }

    #[test]
    fn an_event_round_trips_through_json() {
        let e = one(
            json!({"ts": "2026-01-02T03:04:05Z", "event_type": "lesson_completed",
            "course_id": "C1", "duration_s": 12.5, "score": 0.5, "count": 3}),
        )
        .unwrap();
        assert_eq!(e.count, 3);
        assert!(e.amount.is_nan());
        let again = one(e.to_json()).unwrap();
        assert_eq!(format!("{e:?}"), format!("{again:?}"));
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let field = |v: Value| one(v).unwrap_err().field;
        let ok = json!({"ts": "2026-01-02T03:04:05Z", "event_type": "login"});
        let with = |key: &str, value: Value| {
            let mut v = ok.clone();
            v[key] = value;
            v
        };
        assert!(one(ok.clone()).is_ok());
        assert_eq!(field(with("ts", json!("yesterday"))), "e.ts");
        assert_eq!(
            field(with("event_type", json!("Not A Type"))),
            "e.event_type"
        );
        assert_eq!(field(with("score", json!(1.5))), "e.score");
        assert_eq!(field(with("duration_s", json!(-1))), "e.duration_s");
        assert_eq!(field(with("stalls", json!(1.5))), "e.stalls");
        assert_eq!(field(with("count", json!(0))), "e.count");
        assert_eq!(field(with("colour", json!("red"))), "e.colour");
        assert_eq!(field(with("course_id", json!(""))), "e.course_id");
    }

    #[test]
    fn a_profile_needs_signup_plan_and_channel() {
        let good = json!({"signup_at": "2026-01-01T00:00:00Z", "plan": "free",
            "acquisition_channel": "ads", "device": null, "age": 31});
        assert!(profile(&good, "p").is_ok());
        let mut bad = good.clone();
        bad["plan"] = json!(" ");
        assert_eq!(profile(&bad, "p").unwrap_err().field, "p.plan");
        let mut bad = good;
        bad["age"] = json!([1]);
        assert_eq!(profile(&bad, "p").unwrap_err().field, "p.age");
    }
}
