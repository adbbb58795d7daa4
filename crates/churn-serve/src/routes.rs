//! The route table: which handler answers which path, and the layers
//! around them (see [`crate::middleware`] for their order).

use std::sync::Arc;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post, put};

use crate::state::AppState;
use crate::{admin, info, learners, middleware, oip, predict};

/// The whole router. Scoring routes go through admission (a bounded wait
/// for a scoring slot, then a time limit); every route's body is read first,
/// under the body limits, so a slow client never holds a slot.
pub fn router(state: Arc<AppState>) -> Router {
    let scoring = Router::new()
        .route("/v1/predict", post(predict::predict))
        .route("/v2/models/{name}/infer", post(oip::oip_infer))
        .route(
            "/v1/learners/{id}/prediction",
            get(learners::learner_prediction),
        )
        .route_layer(from_fn_with_state(
            state.admission.clone(),
            middleware::admit,
        ));
    Router::new()
        .route("/v1/models", get(info::list_models))
        .route("/v1/models/{name}", get(info::model_card))
        .route("/v1/admin/reload", post(admin::reload))
        .route("/v1/events", post(learners::ingest))
        .route(
            "/v1/learners/{id}",
            put(learners::put_learner)
                .get(learners::get_learner)
                .delete(learners::delete_learner),
        )
        .route("/v2", get(oip::oip_server))
        .route("/v2/health/live", get(info::live))
        .route("/v2/health/ready", get(info::ready))
        .route("/v2/models/{name}", get(oip::oip_model))
        .route("/v2/models/{name}/ready", get(oip::oip_model_ready))
        .route("/healthz", get(info::live))
        .route("/readyz", get(info::ready))
        .route("/metrics", get(info::metrics))
        .route("/openapi.json", get(info::openapi))
        .merge(scoring)
        .route_layer(from_fn_with_state(state.clone(), middleware::track))
        .fallback(info::not_found)
        .method_not_allowed_fallback(info::method_not_allowed)
        .layer(from_fn_with_state(state.clone(), middleware::read_body))
        .layer(from_fn(middleware::request_id))
        .with_state(state)
}
