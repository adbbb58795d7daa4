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
    Ok(typed_bytes(headers, body, &["application/json"]).await?.0)
}

/// The body's bytes, once its content type (case aside, parameters
/// ignored) is one of `accepted`; and which one it was.
pub async fn typed_bytes(
    headers: &HeaderMap,
    body: Body,
    accepted: &[&'static str],
) -> Result<(Bytes, &'static str), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let Some(kind) = accepted
        .iter()
        .find(|kind| essence.eq_ignore_ascii_case(kind))
    else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content-type must be {}, got {content_type:?}",
                accepted.join(" or ")
            ),
        ));
    };
    let bytes = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("cannot read the body: {e}"),
        )
    })?;
    Ok((bytes, kind))
}
