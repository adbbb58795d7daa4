//! `POST /v1/predict`: score each instance with the model its learner is
//! routed to, explain it, suggest an action, and log the answer (and, for a
//! sampled share of learners, the model's input) in the formats of
//! `churn_model::logs`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use churn_model::RiskBand;
use churn_model::logs::{FeatureLine, LoggedFactor, LoggedModel, LoggedValue, PredictionLine};
use serde_json::{Value, json};

use crate::api::{self, OwnedInput};
use crate::auth::check_predict_token;
use crate::body::json_bytes;
use crate::error::ApiError;
use crate::learners;
use crate::middleware::RequestId;
use crate::state::{AppState, Deployment, Role, Served};
use crate::telemetry::BandRole;

/// Bodies above this size are parsed and scored on the blocking pool, so the
/// async workers stay free to read requests and refuse the excess under
/// load; smaller ones (a few feature maps) are cheaper to answer inline
/// than to hand over. Parsing, features and TreeSHAP all grow with the body.
pub(crate) const INLINE_BYTES: usize = 8 << 10;

pub async fn predict(
    State(state): State<Arc<AppState>>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_predict_token(&state, &headers)?;
    let bytes = json_bytes(&headers, body).await?;
    if bytes.len() <= INLINE_BYTES {
        let request = api::parse_predict(api::parse_json(&bytes)?, &state.config)?;
        // Learner-keyed instances read the store: off the async workers.
        let inline = !request.instances.iter().any(learners::is_keyed);
        return answer(state, request, request_id, inline).await;
    }
    let deployment = state.deployment.load_full();
    let work = {
        let state = state.clone();
        let request_id = request_id.clone();
        move || {
            let value = api::parse_json(&bytes)?;
            let request = api::parse_predict(value, &state.config)?;
            score_all(&state, &deployment, &request, &request_id)
        }
    };
    let predictions = score_where_it_fits(false, work).await?;
    Ok(axum::Json(json!({"predictions": predictions, "request_id": request_id})).into_response())
}

/// Scores a parsed request (inline, or on the blocking pool) and answers
/// `{"predictions", "request_id"}`.
pub(crate) async fn answer(
    state: Arc<AppState>,
    request: api::PredictRequest,
    request_id: String,
    inline: bool,
) -> Result<Response, ApiError> {
    let deployment = state.deployment.load_full();
    let work = {
        let request_id = request_id.clone();
        move || score_all(&state, &deployment, &request, &request_id)
    };
    let predictions = score_where_it_fits(inline, work).await?;
    Ok(axum::Json(json!({"predictions": predictions, "request_id": request_id})).into_response())
}

/// Runs `work` (parsing and scoring a body) on the async worker when the body
/// is small (`inline`), else on the blocking pool.
pub(crate) async fn score_where_it_fits<T: Send + 'static>(
    inline: bool,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if inline {
        return work();
    }
    crate::threads::off_workers(work).await
}

fn score_all(
    state: &AppState,
    deployment: &Deployment,
    request: &api::PredictRequest,
    request_id: &str,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::with_capacity(request.instances.len());
    let mut log_lines = Vec::new();
    let mut feature_lines = Vec::new();
    for (i, instance) in request.instances.iter().enumerate() {
        let learner = api::learner_id(instance, i)?;
        let (role, served) = deployment.route(learner);
        let (input, stored_as_of) = if learners::is_keyed(instance) {
            let (input, as_of) = learners::stored_input(state, served, instance, i)?;
            (input, Some(churn_core::format_timestamp(as_of)))
        } else {
            (
                api::instance_input(served, instance, i, &state.config)?,
                None,
            )
        };
        // The as-of time of a raw instance goes into the log, so that `churn ab
        // --prediction-log` can read each outcome from that time.
        let as_of = stored_as_of
            .as_deref()
            .or_else(|| instance.get("as_of").and_then(Value::as_str));
        let logged = state
            .log
            .is_some()
            .then_some(LogContext { request_id, as_of });
        let (prediction, band, line) =
            score_one(served, role, learner, &input, request.top_k, logged)?;
        state
            .telemetry
            .predictions
            .get_or_create(&BandRole {
                band: band.name().to_owned(),
                role: role.name().to_owned(),
            })
            .inc();
        if let Some(line) = line {
            log_lines.push(serde_json::to_string(&line).map_err(encode_error)?);
        }
        if state.feature_log.is_some()
            && crate::state::bucket(&format!("features:{learner}")) < state.config.feature_log_share
        {
            let line = feature_line(served, role, as_of, &input);
            feature_lines.push(serde_json::to_string(&line).map_err(encode_error)?);
        }
        out.push(prediction);
    }
    if let Some(log) = &state.log {
        for line in log_lines {
            log.record(line);
        }
    }
    if let Some(log) = &state.feature_log {
        for line in feature_lines {
            log.record(line);
        }
    }
    Ok(out)
}

fn encode_error(e: serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        e.to_string(),
    )
}

fn logged_model(served: &Served, role: Role) -> LoggedModel {
    LoggedModel {
        name: served.name().to_owned(),
        version: served.version().to_owned(),
        role: role.name().to_owned(),
    }
}

/// One feature-log line: the model's input values, no learner id or events.
fn feature_line(
    served: &Served,
    role: Role,
    as_of: Option<&str>,
    input: &OwnedInput,
) -> FeatureLine {
    let schema = served.artifact.model.schema();
    let categories = input.categories();
    let numeric = schema.numeric_len();
    let features = schema
        .features
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let value = if j < numeric {
                input
                    .numeric
                    .get(j)
                    .filter(|v| v.is_finite())
                    .map(|&v| LoggedValue::Number(v))
            } else {
                categories
                    .get(j - numeric)
                    .copied()
                    .flatten()
                    .map(|c| LoggedValue::Category(c.to_owned()))
            };
            (f.name.clone(), value)
        })
        .collect();
    FeatureLine {
        time: churn_core::format_timestamp(churn_core::now_ms()),
        as_of: as_of.map(str::to_owned),
        model: logged_model(served, role),
        features,
    }
}

/// What a prediction-log line needs besides the answer.
struct LogContext<'a> {
    request_id: &'a str,
    as_of: Option<&'a str>,
}

/// The answer for one instance, its risk band, and its prediction-log line
/// when the log is on.
fn score_one(
    served: &Served,
    role: Role,
    learner: &str,
    input: &OwnedInput,
    top_k: usize,
    log: Option<LogContext<'_>>,
) -> Result<(Value, RiskBand, Option<PredictionLine>), ApiError> {
    let categories = input.categories();
    let model_input = churn_model::Input {
        numeric: &input.numeric,
        categorical: &categories,
    };
    let answer = churn_model::answer(
        &served.artifact.model,
        &served.policy,
        served.bands,
        &model_input,
        top_k,
    )
    .map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            e.to_string(),
        )
    })?;
    if let Some(drift) = &served.drift {
        drift.observe(&model_input, answer.churn_probability);
    }
    let model = logged_model(served, role);
    let mut value = serde_json::to_value(&answer).map_err(encode_error)?;
    if let Value::Object(map) = &mut value {
        map.insert("learner_id".into(), json!(learner));
        let unseen = served.artifact.model.schema().unseen(&model_input);
        if !unseen.is_empty() {
            // Categories the model never saw in training, read as missing.
            let unseen: serde_json::Map<String, Value> = unseen
                .into_iter()
                .map(|(feature, category)| (feature.to_owned(), json!(category)))
                .collect();
            map.insert("unseen_categories".into(), Value::Object(unseen));
        }
        map.insert(
            "model".into(),
            serde_json::to_value(&model).map_err(encode_error)?,
        );
    }
    let band = answer.risk_band;
    let line = log.map(|context| PredictionLine {
        time: churn_core::format_timestamp(churn_core::now_ms()),
        request_id: context.request_id.to_owned(),
        learner_id: learner.to_owned(),
        as_of: context.as_of.map(str::to_owned),
        model,
        churn_probability: answer.churn_probability,
        risk_band: answer.risk_band,
        top_factors: answer
            .top_factors
            .iter()
            .map(|f| LoggedFactor {
                feature: f.feature.clone(),
                contribution: f.contribution,
            })
            .collect(),
        suggested_action: answer.suggested_action,
    });
    Ok((value, band, line))
}
