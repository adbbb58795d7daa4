//! The learner store's routes: applications post events as they happen
//! (`POST /v1/events`), keep a profile (`PUT /v1/learners/{id}`), read it back
//! (`GET`), ask for a prediction by id (`GET /v1/learners/{id}/prediction`,
//! or a `/v1/predict` instance with only `learner_id`) and erase a learner
//! (`DELETE`). Store calls block, so they run on the blocking pool.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use churn_store::contract::{self, FieldError};
use churn_store::{IngestRow, LearnerStore, PutOutcome, RowOutcome, StoreError};
use serde_json::{Value, json};

use crate::api::{self, OwnedInput, parse_json};
use crate::auth::{check_ingest_token, check_predict_token};
use crate::body::typed_bytes;
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::state::{AppState, Served};

/// Events may be at most this far ahead of the server's clock (clocks of
/// applications and servers differ a little; more is a bug upstream).
const FUTURE_TOLERANCE_MS: i64 = 5 * 60 * 1000;

fn store(state: &AppState) -> Result<Arc<dyn LearnerStore>, ApiError> {
    state.store.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "store_disabled",
            "this server has no learner store: configure store to enable the learner routes",
        )
    })
}

fn store_error(e: StoreError) -> ApiError {
    if let StoreError::BeforeRetention { .. } = e {
        return ApiError::field("as_of", e.to_string());
    }
    tracing::error!(error = %e, "learner store");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the learner store failed; retry shortly",
    )
}

/// Runs a store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    crate::threads::off_workers(move || call().map_err(store_error)).await
}

fn learner_path(id: &str) -> Result<String, ApiError> {
    contract::check_learner_id(id).map_err(|reason| ApiError::field("learner_id", reason))
}

/// The body's bytes, for JSON (`application/json`) or JSON lines
/// (`application/x-ndjson`, `application/jsonl`); true for JSON lines.
async fn body_bytes(headers: &HeaderMap, body: Body) -> Result<(Bytes, bool), ApiError> {
    const JSON: &str = "application/json";
    let (bytes, kind) = typed_bytes(
        headers,
        body,
        &[
            JSON,
            "application/x-ndjson",
            "application/jsonl",
            "application/jsonlines",
        ],
    )
    .await?;
    Ok((bytes, kind != JSON))
}

/// One ingest row refused, with the field at fault.
struct Rejected {
    index: usize,
    field: String,
    reason: String,
}

/// Reads one ingest row: `learner_id`, an optional `event_id` and the
/// event's contract fields.
fn ingest_row(value: &Value, at: &str, now: i64) -> Result<IngestRow, FieldError> {
    let map = contract::object(value, at)?;
    let learner_id =
        contract::learner_id(map.get("learner_id"), &contract::join(at, "learner_id"))?;
    let event_id = match map.get("event_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 256 => Some(id.clone()),
        Some(_) => {
            return Err(FieldError::new(
                contract::join(at, "event_id"),
                "event_id must be a string of 1 to 256 characters",
            ));
        }
    };
    let event = contract::event(map, at, &["learner_id", "event_id"])?;
    if event.ts > now + FUTURE_TOLERANCE_MS {
        return Err(FieldError::new(
            contract::join(at, "ts"),
            "ts is in the future (more than 5 minutes after the server's clock)",
        ));
    }
    Ok(IngestRow {
        learner_id,
        event_id,
        event,
    })
}

/// An ingest body read: the good rows with their places, the rejected ones,
/// and how many rows the body had.
struct IngestBody {
    rows: Vec<(usize, IngestRow)>,
    rejected: Vec<Rejected>,
    total: usize,
}

/// The rows of an ingest body: a JSON array, or JSON lines (a line that is
/// not JSON is a rejected row, not a failed batch).
fn ingest_rows(bytes: &[u8], lines: bool, max_rows: usize) -> Result<IngestBody, ApiError> {
    let now = churn_core::now_ms();
    let values: Vec<Result<Value, String>> = if lines {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_utf8",
                format!("the body is not UTF-8 (byte {})", e.valid_up_to()),
            )
        })?;
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}")))
            .collect()
    } else {
        match parse_json(bytes)? {
            Value::Array(items) => items.into_iter().map(Ok).collect(),
            _ => {
                return Err(ApiError::field(
                    "",
                    "the body must be a JSON array of events (or JSON lines)",
                ));
            }
        }
    };
    if values.is_empty() {
        return Err(ApiError::field("", "no events in the body"));
    }
    if values.len() > max_rows {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{} events; at most {max_rows} per request", values.len()),
        ));
    }
    let total = values.len();
    let mut rows = Vec::with_capacity(total);
    let mut rejected = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let at = format!("[{index}]");
        match value.map_err(|reason| FieldError::new(&at, reason)) {
            Ok(value) => match ingest_row(&value, &at, now) {
                Ok(row) => rows.push((index, row)),
                Err(e) => rejected.push(Rejected {
                    index,
                    field: e.field,
                    reason: e.reason,
                }),
            },
            Err(e) => rejected.push(Rejected {
                index,
                field: e.field,
                reason: e.reason,
            }),
        }
    }
    Ok(IngestBody {
        rows,
        rejected,
        total,
    })
}

/// `POST /v1/events`: stores the rows that pass the contract's rules in one
/// atomic, durable commit; answers what became of each row.
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_ingest_token(&state, &headers)?;
    let store = store(&state)?;
    let (bytes, lines) = body_bytes(&headers, body).await?;
    let max_rows = state.config.max_ingest_rows;
    let parsed = crate::threads::off_workers(move || ingest_rows(&bytes, lines, max_rows)).await;
    let IngestBody {
        rows,
        mut rejected,
        total,
    } = parsed?;
    let (places, rows): (Vec<usize>, Vec<IngestRow>) = rows.into_iter().unzip();
    let outcomes = blocking(move || store.ingest(&rows)).await?;
    let mut accepted = 0usize;
    let mut duplicates = Vec::new();
    for (index, outcome) in places.into_iter().zip(outcomes) {
        match outcome {
            RowOutcome::Accepted => accepted += 1,
            RowOutcome::Duplicate => duplicates.push(index),
            RowOutcome::UnknownLearner => rejected.push(Rejected {
                index,
                field: format!("[{index}].learner_id"),
                reason: "unknown learner: PUT /v1/learners/{id} with its profile first".into(),
            }),
            RowOutcome::BeforeSignup => rejected.push(Rejected {
                index,
                field: format!("[{index}].ts"),
                reason: "event before the learner's signup_at".into(),
            }),
            RowOutcome::BeforeRetention => rejected.push(Rejected {
                index,
                field: format!("[{index}].ts"),
                reason: "event before the store's retention cutoff: events that old are kept only as summaries".into(),
            }),
        }
    }
    rejected.sort_by_key(|r| r.index);
    state.telemetry.ingested.inc_by(accepted as u64);
    Ok(axum::Json(json!({
        "rows": total,
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": rejected
            .iter()
            .map(|r| json!({"index": r.index, "field": r.field, "reason": r.reason}))
            .collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `PUT /v1/learners/{id}`: creates (201) or replaces (200) the profile.
pub async fn put_learner(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_ingest_token(&state, &headers)?;
    let store = store(&state)?;
    let id = learner_path(&id)?;
    let (bytes, _) = body_bytes(&headers, body).await?;
    let value = parse_json(&bytes)?;
    let profile = contract::profile(&value, "")?;
    let learner = id.clone();
    match blocking(move || store.put_profile(&learner, &profile)).await? {
        PutOutcome::Created => Ok((
            StatusCode::CREATED,
            axum::Json(json!({"learner_id": id, "created": true})),
        )
            .into_response()),
        PutOutcome::Replaced => {
            Ok(axum::Json(json!({"learner_id": id, "created": false})).into_response())
        }
        PutOutcome::SignupAfterEvents => Err(ApiError::new(
            StatusCode::CONFLICT,
            "signup_after_events",
            "signup_at is later than an event stored for this learner",
        )
        .with_field("signup_at")),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_learner",
        format!("learner {id:?} is not in the store"),
    )
    .with_field("learner_id")
}

/// `GET /v1/learners/{id}`: the stored profile and event counts.
pub async fn get_learner(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_predict_token(&state, &headers)?;
    let store = store(&state)?;
    let id = learner_path(&id)?;
    let learner = id.clone();
    let Some(summary) = blocking(move || store.summary(&learner)).await? else {
        return Err(not_found(&id));
    };
    let time = |t: Option<i64>| t.map(churn_core::format_timestamp);
    Ok(axum::Json(json!({
        "learner_id": id,
        "profile": summary.profile,
        "events": summary.events,
        "occurrences": summary.occurrences,
        "first_event": time(summary.first_event),
        "last_event": time(summary.last_event),
    }))
    .into_response())
}

/// `DELETE /v1/learners/{id}`: erases the profile and every event (a
/// privacy request). The erasure is logged by id only.
pub async fn delete_learner(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_ingest_token(&state, &headers)?;
    let store = store(&state)?;
    let id = learner_path(&id)?;
    let learner = id.clone();
    if !blocking(move || store.erase(&learner)).await? {
        return Err(not_found(&id));
    }
    tracing::info!(learner_id = %id, "learner erased");
    Ok(axum::Json(json!({"learner_id": id, "erased": true})).into_response())
}

/// The query of `GET /v1/learners/{id}/prediction`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionQuery {
    top_k: Option<usize>,
    as_of: Option<String>,
}

/// `GET /v1/learners/{id}/prediction?top_k=3&as_of=…`: the answer of
/// `/v1/predict` for one learner-keyed instance.
pub async fn learner_prediction(
    State(state): State<Arc<AppState>>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    Path(id): Path<String>,
    query: Result<Query<PredictionQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_predict_token(&state, &headers)?;
    store(&state)?;
    let Query(query) = query.map_err(|e| ApiError::field("query", e.body_text()))?;
    let id = learner_path(&id)?;
    let mut instance = json!({"learner_id": id});
    if let Some(as_of) = query.as_of {
        instance["as_of"] = Value::String(as_of);
    }
    let top_k = query.top_k.unwrap_or(3);
    if top_k > state.config.max_top_k {
        return Err(ApiError::field(
            "top_k",
            format!(
                "top_k must be a whole number from 0 to {}",
                state.config.max_top_k
            ),
        ));
    }
    let request = api::PredictRequest {
        instances: vec![instance],
        top_k,
    };
    crate::predict::answer(state, request, request_id, false).await
}

/// Whether a `/v1/predict` instance names a stored learner only
/// (`learner_id`, optionally `as_of`).
pub fn is_keyed(instance: &Value) -> bool {
    instance.as_object().is_some_and(|map| {
        map.contains_key("learner_id") && map.keys().all(|k| k == "learner_id" || k == "as_of")
    })
}

/// The model input of a learner-keyed instance, from the stored profile and
/// events up to `as_of` (default now), by the same code as a raw instance;
/// and that as-of time.
pub fn stored_input(
    state: &AppState,
    served: &Served,
    instance: &Value,
    i: usize,
) -> Result<(OwnedInput, i64), ApiError> {
    let at = format!("instances[{i}]");
    let Some(store) = &state.store else {
        return Err(ApiError::field(
            &at,
            "an instance with only learner_id needs a learner store: this server has none (send \"features\", or \"as_of\" + \"profile\" + \"events\")",
        ));
    };
    let id = api::learner_id(instance, i)?;
    let as_of = match instance.get("as_of") {
        None | Some(Value::Null) => churn_core::now_ms(),
        some => contract::timestamp(some, &format!("{at}.as_of"))?,
    };
    let history = store.history(id, as_of).map_err(|e| {
        let error = store_error(e);
        match error.field {
            Some(_) => error.with_field(&format!("{at}.as_of")),
            None => error,
        }
    })?;
    let Some(history) = history else {
        return Err(not_found(id).with_field(&format!("{at}.learner_id")));
    };
    // The attributes this model does not read stay in the store.
    let attributes = served.artifact.card.training.feature_set().attributes();
    let profile: serde_json::Map<String, Value> = history
        .profile
        .into_iter()
        .filter(|(key, _)| {
            matches!(
                key.as_str(),
                "signup_at" | "plan" | "acquisition_channel" | "device"
            ) || attributes.numeric.contains(key)
                || attributes.categorical.contains(key)
        })
        .collect();
    let input = api::learner_input(
        served,
        api::LearnerData {
            at: "",
            as_of,
            profile: &profile,
            events: &history.events,
            courses: None,
        },
    )
    .map_err(|e| ApiError {
        message: format!(
            "learner {id:?}'s stored history: {} ({})",
            e.message,
            e.field.as_deref().unwrap_or("")
        ),
        field: Some(format!("{at}.learner_id")),
        ..e
    })?;
    Ok((input, as_of))
}
