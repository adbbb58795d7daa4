//! Bearer tokens: optional on the prediction routes, required for admin.

use axum::http::{HeaderMap, StatusCode, header};

use crate::error::ApiError;
use crate::state::AppState;

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

/// When `predict_token` is set, the request must carry it.
pub fn check_predict_token(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
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

/// Admin routes exist only with an `admin_token`, and need it.
pub fn check_admin_token(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.config.admin_token else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "admin_disabled",
            "admin routes are off: configure admin_token to enable them",
        ));
    };
    if !bearer(headers).is_some_and(|t| same_token(t, expected)) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer token is required",
        ));
    }
    Ok(())
}

/// Store writes exist only with a learner store and an `ingest_token`, and
/// need the token.
pub fn check_ingest_token(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.store.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "store_disabled",
            "this server has no learner store: configure store to enable the learner routes",
        ));
    }
    let Some(expected) = &state.config.ingest_token else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ingest_disabled",
            "writing to the learner store is off: configure ingest_token to enable it",
        ));
    };
    if !bearer(headers).is_some_and(|t| same_token(t, expected)) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid ingest bearer token is required",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abcdefgh", "abcdefgh"));
        assert!(!same_token("abcdefgh", "abcdefgi"));
        assert!(!same_token("abcdefg", "abcdefgh"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "Bearer secret".parse().expect("header"),
        );
        assert_eq!(bearer(&headers), Some("secret"));
    }
}
