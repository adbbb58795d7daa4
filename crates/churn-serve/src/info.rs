//! What the server says about itself: the models it serves and their cards,
//! liveness and readiness, Prometheus metrics, the OpenAPI document, and the
//! JSON answers for unknown routes and methods.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::{AppState, Role, Served};
use crate::telemetry::{FeatureLabel, ModelLabel};

pub async fn not_found(request: Request) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {} {}", request.method(), request.uri().path()),
    )
    .into_response()
}

pub async fn method_not_allowed(request: Request) -> Response {
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

pub fn model_summary(role: Role, served: &Served) -> Value {
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

pub async fn list_models(State(state): State<Arc<AppState>>) -> Response {
    let deployment = state.deployment.load();
    let models: Vec<Value> = deployment.all().map(|(r, s)| model_summary(r, s)).collect();
    axum::Json(json!({"models": models, "challenger_share": deployment.challenger_share}))
        .into_response()
}

pub fn unknown_model(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_model",
        format!("no model {name:?} is being served"),
    )
    .with_field("name")
}

pub async fn model_card(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let deployment = state.deployment.load();
    let (_, served) = deployment.find(&name).ok_or_else(|| unknown_model(&name))?;
    Ok(axum::Json(served.card.clone()).into_response())
}

pub async fn live() -> Response {
    axum::Json(json!({"status": "live"})).into_response()
}

pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let deployment = state.deployment.load();
    let models: Vec<Value> = deployment.all().map(|(r, s)| model_summary(r, s)).collect();
    axum::Json(json!({"status": "ready", "models": models})).into_response()
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Some(store) = &state.store {
        let backlog = i64::try_from(store.backlog()).unwrap_or(i64::MAX);
        state.telemetry.store_backlog.set(backlog);
    }
    // The drift gauges are computed when scraped, off the predict path.
    let deployment = state.deployment.load_full();
    for (role, served) in deployment.all() {
        let Some(drift) = served.drift.as_ref().and_then(|d| d.psi()) else {
            continue;
        };
        let model = ModelLabel::of(role, served);
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

pub async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}
