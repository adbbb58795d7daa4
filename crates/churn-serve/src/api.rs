//! Request parsing and checking: every way a request can be wrong becomes an
//! [`ApiError`] that names the field (`instances[3].events[7].ts`).
//!
//! An instance is either a feature map (`{"learner_id", "features": {name:
//! value}}`, every feature of the model present, `null` for missing) or raw
//! data (`{"learner_id", "as_of", "profile", "events"}`) from which the
//! features are computed by the same code as the batch table.

use churn_core::{Event, EventKind, NO_COURSE, parse_category, parse_event_type};
use churn_features::{Profile, SortedEvents};
use churn_model::Kind;
use churn_store::contract::{self, ContractEvent, FieldError, join};
use serde_json::{Map, Value};

use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::state::Served;

/// A parsed `/v1/predict` body.
pub struct PredictRequest {
    pub instances: Vec<Value>,
    pub top_k: usize,
}

/// An instance's input values, owned.
pub struct OwnedInput {
    pub numeric: Vec<f64>,
    pub categorical: Vec<Option<String>>,
}

impl OwnedInput {
    pub fn categories(&self) -> Vec<Option<&str>> {
        self.categorical.iter().map(|c| c.as_deref()).collect()
    }
}

/// Parses the JSON body (already size-limited).
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_utf8",
            format!("the body is not UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    })
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::field(e.field, e.reason)
    }
}

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, ApiError> {
    Ok(contract::object(value, field)?)
}

fn refuse_unknown(map: &Map<String, Value>, known: &[&str], at: &str) -> Result<(), ApiError> {
    Ok(contract::refuse_unknown(map, known, at)?)
}

/// Checks the envelope: `instances` (1 ..= max_batch) and `top_k`.
pub fn parse_predict(value: Value, config: &ServeConfig) -> Result<PredictRequest, ApiError> {
    let Value::Object(mut map) = value else {
        return Err(ApiError::field(
            "",
            "the body must be a JSON object with \"instances\"",
        ));
    };
    refuse_unknown(&map, &["instances", "top_k"], "")?;
    let top_k = match map.get("top_k") {
        None | Some(Value::Null) => 3,
        Some(v) => match v.as_u64() {
            Some(k) if (k as usize) <= config.max_top_k => k as usize,
            _ => {
                return Err(ApiError::field(
                    "top_k",
                    format!(
                        "top_k must be a whole number from 0 to {}",
                        config.max_top_k
                    ),
                ));
            }
        },
    };
    let instances = match map.remove("instances") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::field("instances", "instances must be an array")),
        None => return Err(ApiError::field("instances", "missing field \"instances\"")),
    };
    if instances.is_empty() {
        return Err(ApiError::field("instances", "instances is empty"));
    }
    if instances.len() > config.max_batch {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} instances; at most {} per request",
                instances.len(),
                config.max_batch
            ),
        )
        .with_field("instances"));
    }
    Ok(PredictRequest { instances, top_k })
}

/// The learner id of instance `i`.
pub fn learner_id(instance: &Value, i: usize) -> Result<&str, ApiError> {
    let at = format!("instances[{i}]");
    let map = object(instance, &at)?;
    match map.get("learner_id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 256 => Ok(id),
        Some(Value::String(_)) => Err(ApiError::field(
            format!("{at}.learner_id"),
            "learner_id must be 1 to 256 characters",
        )),
        Some(_) => Err(ApiError::field(
            format!("{at}.learner_id"),
            "learner_id must be a string",
        )),
        None => Err(ApiError::field(
            format!("{at}.learner_id"),
            "missing field \"learner_id\"",
        )),
    }
}

/// The model input of instance `i`.
pub fn instance_input(
    served: &Served,
    instance: &Value,
    i: usize,
    config: &ServeConfig,
) -> Result<OwnedInput, ApiError> {
    let at = format!("instances[{i}]");
    let map = object(instance, &at)?;
    if map.contains_key("features") {
        refuse_unknown(map, &["learner_id", "features"], &at)?;
        return feature_map(served, &map["features"], &format!("{at}.features"));
    }
    if map.contains_key("events") || map.contains_key("profile") {
        refuse_unknown(
            map,
            &["learner_id", "as_of", "profile", "events", "courses"],
            &at,
        )?;
        if !served.reads_churn_features {
            return Err(ApiError::field(
                &at,
                format!(
                    "model {} reads a plain table, not churn's features: send \"features\"",
                    served.name()
                ),
            ));
        }
        return raw(map, &at, served, config);
    }
    Err(ApiError::field(
        &at,
        "an instance needs \"features\", or \"as_of\" + \"profile\" + \"events\"",
    ))
}

fn feature_map(served: &Served, value: &Value, at: &str) -> Result<OwnedInput, ApiError> {
    let map = object(value, at)?;
    let schema = served.artifact.model.schema();
    let numeric_len = schema.numeric_len();
    let mut input = OwnedInput {
        numeric: vec![f64::NAN; numeric_len],
        categorical: vec![None; schema.features.len() - numeric_len],
    };
    if let Some(unknown) = map.keys().find(|k| !served.index.contains_key(k.as_str())) {
        return Err(ApiError::field(
            join(at, unknown),
            format!("model {} has no feature {unknown:?}", served.name()),
        ));
    }
    for (j, feature) in schema.features.iter().enumerate() {
        let field = join(at, &feature.name);
        let Some(value) = map.get(&feature.name) else {
            return Err(ApiError::field(
                field,
                format!(
                    "missing feature {:?} (send null for a missing value)",
                    feature.name
                ),
            ));
        };
        match (feature.kind, value) {
            (_, Value::Null) => {}
            (Kind::Numeric, Value::Number(n)) => match n.as_f64() {
                Some(v) if v.is_finite() => input.numeric[j] = v,
                _ => return Err(ApiError::field(field, "not a finite number")),
            },
            (Kind::Numeric, _) => {
                return Err(ApiError::field(
                    field,
                    format!("{} must be a number or null", feature.name),
                ));
            }
            (Kind::Categorical, Value::String(s)) => {
                input.categorical[j - numeric_len] = Some(s.clone());
            }
            (Kind::Categorical, _) => {
                return Err(ApiError::field(
                    field,
                    format!("{} must be a string or null", feature.name),
                ));
            }
        }
    }
    Ok(input)
}

fn timestamp(value: Option<&Value>, field: &str) -> Result<i64, ApiError> {
    Ok(contract::timestamp(value, field)?)
}

fn raw(
    map: &Map<String, Value>,
    at: &str,
    served: &Served,
    config: &ServeConfig,
) -> Result<OwnedInput, ApiError> {
    let as_of = timestamp(map.get("as_of"), &join(at, "as_of"))?;
    let profile_at = join(at, "profile");
    let profile = object(
        map.get("profile")
            .ok_or_else(|| ApiError::field(&profile_at, "missing"))?,
        &profile_at,
    )?;
    let courses = match map.get("courses") {
        Some(courses) => Some(object(courses, &join(at, "courses"))?),
        None => None,
    };
    let events_at = join(at, "events");
    let Some(Value::Array(items)) = map.get("events") else {
        return Err(ApiError::field(events_at, "events must be an array"));
    };
    if items.len() > config.max_events {
        return Err(ApiError::field(
            events_at,
            format!(
                "{} events; at most {} per instance",
                items.len(),
                config.max_events
            ),
        ));
    }
    let events = items
        .iter()
        .enumerate()
        .map(|(k, item)| {
            let e_at = format!("{events_at}[{k}]");
            Ok(contract::event(object(item, &e_at)?, &e_at, &[])?)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    learner_input(
        served,
        LearnerData {
            at,
            as_of,
            profile,
            events: &events,
            courses,
        },
    )
}

/// One learner's data as the contract gives it, whatever carried it (a raw
/// instance, or the learner store).
pub struct LearnerData<'a> {
    /// Where the instance is in the request (`instances[2]`), for errors.
    pub at: &'a str,
    pub as_of: i64,
    pub profile: &'a Map<String, Value>,
    /// By time (an earlier event after a later one is refused).
    pub events: &'a [ContractEvent],
    /// Lessons per course id for courses the catalogue lacks.
    pub courses: Option<&'a Map<String, Value>>,
}

/// The model input of one learner: its profile checked against the model's
/// attributes, its events mapped to the model's event types and courses, and
/// the features computed by the same code as the batch table.
pub fn learner_input(served: &Served, data: LearnerData<'_>) -> Result<OwnedInput, ApiError> {
    let LearnerData {
        at,
        as_of,
        profile,
        events: contract_events,
        courses,
    } = data;
    let catalogue = &served.catalogue;
    let activity_types = served.artifact.card.training.activity_types();
    let profile_at = join(at, "profile");
    let attributes = served.artifact.card.training.feature_set().attributes();
    let profile_fields: Vec<&str> = ["signup_at", "plan", "acquisition_channel", "device"]
        .into_iter()
        .chain(attributes.numeric.iter().map(String::as_str))
        .chain(attributes.categorical.iter().map(String::as_str))
        .collect();
    refuse_unknown(profile, &profile_fields, &profile_at)?;
    // Learner attributes the model reads: absent or null is missing.
    let numeric_attributes = attributes
        .numeric
        .iter()
        .map(|name| match profile.get(name) {
            None | Some(Value::Null) => Ok(f64::NAN),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| ApiError::field(join(&profile_at, name), "not a finite number")),
            Some(_) => Err(ApiError::field(
                join(&profile_at, name),
                format!("{name} must be a number or null"),
            )),
        })
        .collect::<Result<Vec<f64>, _>>()?;
    let categorical_attributes = attributes
        .categorical
        .iter()
        .map(|name| match profile.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) => Ok(parse_category(v).map(str::to_owned)),
            Some(_) => Err(ApiError::field(
                join(&profile_at, name),
                format!("{name} must be a string or null"),
            )),
        })
        .collect::<Result<Vec<Option<String>>, _>>()?;
    let signup_at = timestamp(profile.get("signup_at"), &join(&profile_at, "signup_at"))?;
    if as_of < signup_at {
        return Err(ApiError::field(
            join(at, "as_of"),
            "as_of is before the learner's signup_at",
        ));
    }
    let category = |field: &str| match profile.get(field) {
        Some(Value::String(v)) => parse_category(v)
            .ok_or_else(|| ApiError::field(join(&profile_at, field), "must be a non-empty string")),
        _ => Err(ApiError::field(
            join(&profile_at, field),
            "must be a non-empty string",
        )),
    };
    let plan = category("plan")?;
    let channel = category("acquisition_channel")?;
    let device = match profile.get("device") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => parse_category(d),
        Some(_) => {
            return Err(ApiError::field(
                join(&profile_at, "device"),
                "must be a string or null",
            ));
        }
    };

    // Courses named in the request extend (and override) the catalogue; the
    // catalogue is copied only for such a request.
    let mut lessons = std::borrow::Cow::Borrowed(catalogue.lessons.as_slice());
    let mut extra = std::collections::HashMap::new();
    if let Some(courses) = courses {
        let courses_at = join(at, "courses");
        for (id, count) in courses {
            let count = count
                .as_u64()
                .filter(|&c| c <= u64::from(u32::MAX))
                .ok_or_else(|| {
                    ApiError::field(join(&courses_at, id), "lessons must be a whole number")
                })?;
            extra.insert(id.as_str(), lessons.len() as u32);
            lessons.to_mut().push(count as u32);
        }
    }

    let events_at = join(at, "events");
    let mut events = Vec::with_capacity(contract_events.len());
    for (k, e) in contract_events.iter().enumerate() {
        let e_at = format!("{events_at}[{k}]");
        if e.ts < signup_at {
            return Err(ApiError::field(
                join(&e_at, "ts"),
                "event before the learner's signup_at",
            ));
        }
        if let Some(previous) = events.last().map(|p: &Event| p.ts)
            && e.ts < previous
        {
            return Err(ApiError::field(
                join(&e_at, "ts"),
                "events must be sorted by ts (this one is earlier than the one before)",
            ));
        }
        let event_type = match parse_event_type(&e.event_type) {
            Ok(Ok(known)) => EventKind::Known(known),
            // A custom type: activity when the model's data said so; its
            // index is its place among the types the model knows (the
            // others share the last index: no feature reads them).
            Ok(Err(name)) => EventKind::Custom {
                index: served
                    .custom_types
                    .binary_search_by(|t| t.as_str().cmp(name))
                    .map_or(u16::MAX, |i| i as u16),
                activity: activity_types.iter().any(|a| a == name),
            },
            Err(err) => return Err(ApiError::field(join(&e_at, "event_type"), err.to_string())),
        };
        let course = match &e.course_id {
            None => NO_COURSE,
            Some(id) => match extra.get(id.as_str()).or(catalogue.index.get(id)) {
                Some(&c) => c,
                None => {
                    return Err(ApiError::field(
                        join(&e_at, "course_id"),
                        format!(
                            "unknown course {id:?}: not in the model's catalogue; give its lessons in \"courses\" or start the server with --courses"
                        ),
                    ));
                }
            },
        };
        events.push(e.to_event(course, event_type));
    }
    // Sorted by time (checked above); ties into the contract's canonical order.
    let sorted = SortedEvents::sort(&mut events);
    let profile = Profile {
        signup_at,
        plan,
        acquisition_channel: channel,
        device,
        numeric_attributes: &numeric_attributes,
        categorical_attributes: &categorical_attributes,
    };
    let row = churn_features::compute(&profile, sorted, as_of, &lessons, &served.layout);
    Ok(OwnedInput {
        numeric: row.numeric,
        categorical: row
            .categorical
            .iter()
            .map(|c| c.map(str::to_owned))
            .collect(),
    })
}

/// The raw instance of one learner of `dataset` as `/v1/predict` reads it:
/// profile, the learner's `events` (already sorted by time and cut at
/// `as_of`) and the as-of time. The inverse of the parser above, so a client
/// (or the quickstart's curl example, or a test) can send a learner of a data
/// directory as it is. `None` when `learner` is not an index of
/// `dataset.learners`.
pub fn raw_instance(
    dataset: &churn_core::Dataset,
    learner: usize,
    events: &[&Event],
    as_of: i64,
) -> Option<Value> {
    let l = dataset.learners.get(learner)?;
    let events: Vec<Value> = events
        .iter()
        .map(|e| churn_store::load::event_of(dataset, e).to_json())
        .collect();
    Some(serde_json::json!({
        "learner_id": l.id,
        "as_of": churn_core::format_timestamp(as_of),
        "profile": churn_store::load::profile_of(dataset, l).json,
        "events": events,
    }))
}
