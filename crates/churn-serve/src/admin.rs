//! `POST /v1/admin/reload`, behind the admin token.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::check_admin_token;
use crate::body::json_body;
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /v1/admin/reload`: re-resolves the configured (or given) champion and
/// challenger, loads and checks them off the request path, then swaps.
pub async fn reload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_admin_token(&state, &headers)?;
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
        let value = json_body(&headers, body).await?;
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
    let outcome = state.reload(champion, challenger).await;
    match outcome {
        Ok(summary) => Ok(axum::Json(summary).into_response()),
        Err(message) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_failed",
            message,
        )),
    }
}
