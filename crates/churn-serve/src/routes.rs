//! The HTTP routes (DESIGN.md "HTTP API") and the middleware around them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tower::ServiceBuilder;
use tracing::Instrument;

use crate::api::{self, OwnedInput};
use crate::error::ApiError;
use crate::state::{AppState, Deployment, Role, Served};
use crate::telemetry::{BandRole, FeatureLabel, ModelLabel, OutcomeLabel, RouteLabel, RouteStatus};

/// The request id of the request being answered.
#[derive(Clone)]
pub struct RequestId(pub String);

type Shared = State<Arc<AppState>>;

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    let shed = state.telemetry.shed.clone();
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |err: tower::BoxError| {
            let shed = shed.clone();
            async move { overloaded(err, &shed) }
        }))
        .load_shed()
        .concurrency_limit(state.config.max_concurrency)
        .timeout(Duration::from_millis(state.config.request_timeout_ms));
    Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{name}", get(model_card))
        .route("/v1/admin/reload", post(reload))
        .route("/v2", get(oip_server))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(oip_model))
        .route("/v2/models/{name}/ready", get(oip_model_ready))
        .route("/v2/models/{name}/infer", post(oip_infer))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(limits)
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

fn overloaded(
    err: tower::BoxError,
    shed: &prometheus_client::metrics::counter::Counter,
) -> Response {
    shed.inc();
    let error = if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took longer than the server's limit",
        )
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is at capacity; retry shortly",
        )
    };
    error.into_response()
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);

fn new_request_id() -> String {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0)
    });
    format!(
        "{prefix:08x}-{:012x}",
        REQUESTS.fetch_add(1, Ordering::Relaxed)
    )
}

/// Takes the client's `x-request-id` when it is sane, else makes one; puts it
/// on the request, the response and the tracing span.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Counts and times every routed request.
async fn track(State(state): Shared, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    let telemetry = &state.telemetry;
    telemetry
        .requests
        .get_or_create(&RouteStatus {
            route: route.clone(),
            status,
        })
        .inc();
    telemetry
        .latency
        .get_or_create(&RouteLabel {
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    if status >= 500 {
        tracing::warn!(
            status,
            route,
            micros = elapsed.as_micros() as u64,
            "answered"
        );
    } else {
        tracing::debug!(
            status,
            route,
            micros = elapsed.as_micros() as u64,
            "answered"
        );
    }
    response
}

async fn not_found(request: Request) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {} {}", request.method(), request.uri().path()),
    )
    .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Constant-time comparison, so response times do not leak the token.
fn same_token(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn check_predict_token(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match &state.config.predict_token {
        Some(expected) if !bearer(headers).is_some_and(|t| same_token(t, expected)) => {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            ))
        }
        _ => Ok(()),
    }
}

/// Reads a JSON body: content type, size limit, UTF-8, syntax.
async fn json_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content-type must be application/json, got {content_type:?}"),
        ));
    }
    let limit = state.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let message = e.to_string();
        let too_large = e
            .into_inner()
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some();
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {limit} bytes"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("cannot read the body: {message}"),
            )
        }
    })?;
    api::parse_json(&bytes)
}

/// Rows above which a batch is scored on the blocking pool instead of the
/// async worker (a 200-tree TreeSHAP costs tens of µs per row).
const INLINE_ROWS: usize = 16;

async fn predict(
    State(state): Shared,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match predict_inner(state, request_id, headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn predict_inner(
    state: Arc<AppState>,
    request_id: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_predict_token(&state, &headers)?;
    let value = json_body(&state, &headers, body).await?;
    let request = api::parse_predict(value, &state.config)?;
    let deployment = state.deployment.load_full();
    let rows = request.instances.len();
    let work = {
        let state = state.clone();
        let request_id = request_id.clone();
        move || score_all(&state, &deployment, &request, &request_id)
    };
    let predictions = if rows <= INLINE_ROWS {
        work()?
    } else {
        tokio::task::spawn_blocking(work).await.map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "scoring was interrupted",
            )
        })??
    };
    Ok(axum::Json(json!({"predictions": predictions, "request_id": request_id})).into_response())
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
        let input = api::instance_input(served, instance, i, &state.config)?;
        // The as-of time of a raw instance goes into the log, so that `churn ab
        // --prediction-log` can read each outcome from that time.
        let log = state.log.is_some().then(|| LogContext {
            request_id,
            as_of: instance.get("as_of").and_then(Value::as_str),
        });
        let (prediction, line) = score_one(served, role, learner, &input, request.top_k, log)?;
        state
            .telemetry
            .predictions
            .get_or_create(&BandRole {
                band: prediction["risk_band"].as_str().unwrap_or("").to_owned(),
                role: role.name().to_owned(),
            })
            .inc();
        if let Some(line) = line {
            log_lines.push(line);
        }
        if state.feature_log.is_some()
            && crate::state::bucket(&format!("features:{learner}")) < state.config.feature_log_share
        {
            feature_lines.push(feature_line(served, role, instance, &input));
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

/// One feature-log line: the model's input values, no learner id or events.
fn feature_line(served: &Served, role: Role, instance: &Value, input: &OwnedInput) -> String {
    let schema = served.artifact.model.schema();
    let categories = input.categories();
    let mut features = serde_json::Map::new();
    for (j, f) in schema.features.iter().enumerate() {
        let value = match input.numeric.get(j) {
            Some(v) if j < schema.numeric_len() => json!(v.is_finite().then_some(*v)),
            _ => json!(categories.get(j - schema.numeric_len()).copied().flatten()),
        };
        features.insert(f.name.clone(), value);
    }
    json!({
        "time": churn_core::format_timestamp(now_ms()),
        "as_of": instance.get("as_of").and_then(Value::as_str),
        "model": {"name": served.name(), "version": served.version(), "role": role.name()},
        "features": features,
    })
    .to_string()
}

/// What a prediction-log line needs besides the answer.
struct LogContext<'a> {
    request_id: &'a str,
    as_of: Option<&'a str>,
}

fn score_one(
    served: &Served,
    role: Role,
    learner: &str,
    input: &OwnedInput,
    top_k: usize,
    log: Option<LogContext<'_>>,
) -> Result<(Value, Option<String>), ApiError> {
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
    let model = json!({"name": served.name(), "version": served.version(), "role": role.name()});
    let mut value = serde_json::to_value(&answer).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            e.to_string(),
        )
    })?;
    let log = log.map(|context| {
        json!({
        "time": churn_core::format_timestamp(now_ms()),
        "request_id": context.request_id,
        "learner_id": learner,
        "as_of": context.as_of,
        "model": model,
        "churn_probability": answer.churn_probability,
        "risk_band": answer.risk_band,
        "top_factors": answer.top_factors.iter().map(|f| json!({"feature": f.feature, "contribution": f.contribution})).collect::<Vec<_>>(),
        "suggested_action": answer.suggested_action,
    })
        .to_string()
    });
    if let Value::Object(map) = &mut value {
        map.insert("learner_id".into(), json!(learner));
        map.insert("model".into(), model);
    }
    Ok((value, log))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn model_summary(role: Role, served: &Served) -> Value {
    let card = &served.artifact.card;
    json!({
        "name": card.name,
        "version": card.version,
        "role": role.name(),
        "kind": card.kind,
        "created_at": card.created_at,
        "features": card.features.len(),
        "reads_churn_features": served.reads_churn_features,
        "policy": churn_model::Policy::id(&served.policy),
    })
}

async fn list_models(State(state): Shared) -> Response {
    let deployment = state.deployment.load();
    let models: Vec<Value> = deployment.all().map(|(r, s)| model_summary(r, s)).collect();
    axum::Json(json!({"models": models, "challenger_share": deployment.challenger_share}))
        .into_response()
}

fn unknown_model(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_model",
        format!("no model {name:?} is being served"),
    )
    .with_field("name")
}

async fn model_card(State(state): Shared, Path(name): Path<String>) -> Response {
    let deployment = state.deployment.load();
    match deployment.find(&name) {
        Some((_, served)) => axum::Json(served.card.clone()).into_response(),
        None => unknown_model(&name).into_response(),
    }
}

async fn live() -> Response {
    axum::Json(json!({"status": "live"})).into_response()
}

async fn ready(State(state): Shared) -> Response {
    let deployment = state.deployment.load();
    let models: Vec<Value> = deployment.all().map(|(r, s)| model_summary(r, s)).collect();
    axum::Json(json!({"status": "ready", "models": models})).into_response()
}

async fn metrics(State(state): Shared) -> Response {
    // The drift gauges are computed when scraped, off the predict path.
    let deployment = state.deployment.load_full();
    for (role, served) in deployment.all() {
        let Some(drift) = served.drift.as_ref().and_then(|d| d.psi()) else {
            continue;
        };
        let model = ModelLabel {
            name: served.name().to_owned(),
            version: served.version().to_owned(),
            role: role.name().to_owned(),
        };
        for (feature, psi) in drift.features {
            state
                .telemetry
                .feature_psi
                .get_or_create(&FeatureLabel {
                    name: model.name.clone(),
                    version: model.version.clone(),
                    role: model.role.clone(),
                    feature,
                })
                .set(psi);
        }
        state
            .telemetry
            .prediction_psi
            .get_or_create(&model)
            .set(drift.prediction);
        state
            .telemetry
            .drift_rows
            .get_or_create(&model)
            .set(drift.rows as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.telemetry.encode(),
    )
        .into_response()
}

async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}

/// `POST /v1/admin/reload`: re-resolves the configured (or given) champion and
/// challenger, loads and checks them off the request path, then swaps.
async fn reload(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    match reload_inner(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn reload_inner(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(expected) = &state.config.admin_token else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "admin_disabled",
            "admin routes are off: configure admin_token to enable them",
        ));
    };
    if !bearer(&headers).is_some_and(|t| same_token(t, expected)) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer token is required",
        ));
    }
    let empty = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v == "0")
        || headers.get(header::CONTENT_TYPE).is_none();
    let (champion, challenger) = if empty {
        (
            state.config.champion.clone(),
            state.config.challenger.clone(),
        )
    } else {
        let value = json_body(&state, &headers, body).await?;
        let Value::Object(map) = value else {
            return Err(ApiError::field("", "the body must be an object"));
        };
        if let Some(key) = map
            .keys()
            .find(|k| !["champion", "challenger"].contains(&k.as_str()))
        {
            return Err(ApiError::field(
                key.clone(),
                "unknown field (expected champion, challenger)",
            ));
        }
        let reference = |key: &str, default: Option<String>| -> Result<Option<String>, ApiError> {
            match map.get(key) {
                None => Ok(default),
                Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::field(key, "must be NAME or NAME@VERSION")),
            }
        };
        let champion = reference("champion", Some(state.config.champion.clone()))?
            .ok_or_else(|| ApiError::field("champion", "the champion cannot be removed"))?;
        (
            champion,
            reference("challenger", state.config.challenger.clone())?,
        )
    };
    let outcome = reload_models(&state, champion, challenger).await;
    match outcome {
        Ok(summary) => Ok(axum::Json(summary).into_response()),
        Err(message) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_failed",
            message,
        )),
    }
}

/// Loads, checks and swaps in a deployment; the old one keeps serving on error.
pub async fn reload_models(
    state: &Arc<AppState>,
    champion: String,
    challenger: Option<String>,
) -> Result<Value, String> {
    let _one_at_a_time = state.reload.lock().await;
    let config = state.config.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        crate::state::load_deployment(&config, &champion, challenger.as_deref())
    })
    .await
    .map_err(|e| format!("loading was interrupted: {e}"))
    .and_then(|r| r.map_err(|e| e.to_string()));
    let outcome = |label: &str| {
        state
            .telemetry
            .reloads
            .get_or_create(&OutcomeLabel {
                outcome: label.to_owned(),
            })
            .inc()
    };
    match loaded {
        Ok(deployment) => {
            let previous = state.deployment.swap(Arc::new(deployment));
            for (role, served) in previous.all() {
                state.telemetry.model_info.remove(&ModelLabel {
                    name: served.name().to_owned(),
                    version: served.version().to_owned(),
                    role: role.name().to_owned(),
                });
            }
            publish_models(state);
            outcome("ok");
            let now = state.deployment.load();
            let models: Vec<Value> = now.all().map(|(r, s)| model_summary(r, s)).collect();
            tracing::info!(models = %serde_json::to_string(&models).unwrap_or_default(), "reloaded");
            Ok(json!({"reloaded": true, "models": models}))
        }
        Err(message) => {
            outcome("refused");
            tracing::warn!(error = %message, "reload refused; the previous models keep serving");
            Err(message)
        }
    }
}

/// Sets the `model_info` gauge for the models being served.
pub fn publish_models(state: &AppState) {
    let deployment = state.deployment.load();
    for (role, served) in deployment.all() {
        state
            .telemetry
            .model_info
            .get_or_create(&ModelLabel {
                name: served.name().to_owned(),
                version: served.version().to_owned(),
                role: role.name().to_owned(),
            })
            .set(1);
    }
}

// Open Inference Protocol v2 (KServe / Triton clients).

async fn oip_server() -> Response {
    axum::Json(json!({"name": "churn", "version": env!("CARGO_PKG_VERSION"), "extensions": []}))
        .into_response()
}

async fn oip_model(State(state): Shared, Path(name): Path<String>) -> Response {
    let deployment = state.deployment.load();
    let Some((_, served)) = deployment.find(&name) else {
        return unknown_model(&name).into_response();
    };
    let inputs: Vec<Value> = served
        .artifact
        .model
        .schema()
        .features
        .iter()
        .map(|f| {
            json!({"name": f.name, "datatype": if f.kind == churn_model::Kind::Numeric { "FP64" } else { "BYTES" }, "shape": [-1]})
        })
        .collect();
    axum::Json(json!({
        "name": served.name(),
        "versions": [served.version()],
        "platform": "churn",
        "inputs": inputs,
        "outputs": [
            {"name": "churn_probability", "datatype": "FP64", "shape": [-1]},
            {"name": "margin", "datatype": "FP64", "shape": [-1]},
        ],
    }))
    .into_response()
}

async fn oip_model_ready(State(state): Shared, Path(name): Path<String>) -> Response {
    let deployment = state.deployment.load();
    match deployment.find(&name) {
        Some(_) => axum::Json(json!({"name": name, "ready": true})).into_response(),
        None => unknown_model(&name).into_response(),
    }
}

async fn oip_infer(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match oip_infer_inner(state, name, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn oip_infer_inner(
    state: Arc<AppState>,
    name: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_predict_token(&state, &headers)?;
    let deployment = state.deployment.load_full();
    let Some((_, served)) = deployment.find(&name) else {
        return Err(unknown_model(&name));
    };
    let value = json_body(&state, &headers, body).await?;
    let (id, rows) = crate::oip::parse_infer(&value, served, state.config.max_batch)?;
    let mut probabilities = Vec::with_capacity(rows.len());
    let mut margins = Vec::with_capacity(rows.len());
    for input in &rows {
        let categories = input.categories();
        let model_input = churn_model::Input {
            numeric: &input.numeric,
            categorical: &categories,
        };
        let margin = served.artifact.model.margin(&model_input).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                e.to_string(),
            )
        })?;
        margins.push(margin);
        probabilities.push(
            served
                .artifact
                .model
                .model()
                .calibration
                .probability(margin),
        );
    }
    let n = rows.len();
    Ok(axum::Json(json!({
        "model_name": served.name(),
        "model_version": served.version(),
        "id": id,
        "outputs": [
            {"name": "churn_probability", "datatype": "FP64", "shape": [n], "data": probabilities},
            {"name": "margin", "datatype": "FP64", "shape": [n], "data": margins},
        ],
    }))
    .into_response())
}
