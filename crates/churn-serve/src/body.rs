//! A request's JSON body: content type and syntax. The bytes are already in
//! memory ([`crate::middleware::read_body`] read them under the size and
//! time limits).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use crate::api;
use crate::error::ApiError;

/// The body as JSON, or a 4xx that says what is wrong with it.
pub async fn json_body(headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    api::parse_json(&json_bytes(headers, body).await?)
}

/// The body's bytes, once its content type says JSON (parsing is the
/// caller's, e.g. off the async workers for a large body).
pub async fn json_bytes(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
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
    axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("cannot read the body: {e}"),
        )
    })
}
