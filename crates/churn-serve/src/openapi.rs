//! `/openapi.json`: the API as OpenAPI 3.1.
//!
//! Written out rather than derived: the request bodies are checked by hand
//! (for field-level errors), so there are no request structs to derive from.
//! `tests/serve.rs` checks that every route of the router is documented and
//! that the documented response fields are the ones answered.

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document.
pub fn document() -> Value {
    let json_body = |schema: &str| json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    let ok = |schema: &str| json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    let plain_ok = json!({"description": "OK"});
    let id_param =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let name_param =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "churn", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Churn probability, the reasons (log-odds contributions) and a suggested intervention per learner."},
        "paths": {
            "/v1/predict": {"post": {
                "summary": "Score learners: probability, risk band, top factors, suggested action",
                "requestBody": json_body("PredictRequest"),
                "responses": {"200": ok("PredictResponse"), "400": error_response("Malformed body"),
                    "401": error_response("Missing or wrong bearer token"), "413": error_response("Body or batch too large"),
                    "415": error_response("Not application/json"), "422": error_response("A field is wrong (see error.field)"),
                    "503": error_response("At capacity or too slow; retry after Retry-After seconds")}}},
            "/v1/events": {"post": {
                "summary": "Store events in the learner store (bearer ingest token): a JSON array, or JSON lines (application/x-ndjson); atomic and durable per request, idempotent by event_id",
                "requestBody": json_body("EventBatch"),
                "responses": {"200": ok("IngestResponse"), "400": error_response("Malformed body"),
                    "401": error_response("Missing or wrong ingest token"), "404": error_response("No learner store, or ingest is off"),
                    "413": error_response("Body or batch too large"), "415": error_response("Not JSON or JSON lines"),
                    "422": error_response("The body is not an array of events"), "503": error_response("The store failed; retry")}}},
            "/v1/learners/{id}": {
                "put": {"summary": "Create or replace a learner's profile (bearer ingest token)", "parameters": id_param,
                    "requestBody": json_body("Profile"),
                    "responses": {"200": plain_ok, "201": plain_ok, "401": error_response("Missing or wrong ingest token"),
                        "404": error_response("No learner store, or ingest is off"), "409": error_response("signup_at is later than a stored event"),
                        "422": error_response("A field is wrong (see error.field)")}},
                "get": {"summary": "The stored profile and event counts", "parameters": id_param,
                    "responses": {"200": plain_ok, "404": error_response("Unknown learner, or no learner store")}},
                "delete": {"summary": "Erase the profile and every event of the learner (bearer ingest token)", "parameters": id_param,
                    "responses": {"200": plain_ok, "401": error_response("Missing or wrong ingest token"),
                        "404": error_response("Unknown learner, no learner store, or ingest is off")}}},
            "/v1/learners/{id}/prediction": {"get": {
                "summary": "The prediction for a stored learner: features from its stored history, as /v1/predict answers",
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "top_k", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "default": 3}},
                    {"name": "as_of", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"},
                        "description": "Default: now."}],
                "responses": {"200": ok("PredictResponse"), "404": error_response("Unknown learner, or no learner store"),
                    "422": error_response("A field is wrong (see error.field)"),
                    "503": error_response("At capacity or too slow; retry after Retry-After seconds")}}},
            "/v1/models": {"get": {"summary": "Models being served", "responses": {"200": plain_ok}}},
            "/v1/models/{name}": {"get": {"summary": "A served model's card", "parameters": name_param,
                "responses": {"200": plain_ok, "404": error_response("Not served")}}},
            "/v1/admin/reload": {"post": {"summary": "Load, check and swap in the champion/challenger (bearer admin token)",
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"champion": {"type": "string"}, "challenger": {"type": ["string", "null"]}}}}}},
                "responses": {"200": plain_ok, "401": error_response("Missing or wrong admin token"),
                    "404": error_response("Admin routes are off"), "422": error_response("The new models were refused; the old ones keep serving")}}},
            "/v2": {"get": {"summary": "Open Inference Protocol: server metadata", "responses": {"200": plain_ok}}},
            "/v2/health/live": {"get": {"summary": "Liveness", "responses": {"200": plain_ok}}},
            "/v2/health/ready": {"get": {"summary": "Readiness", "responses": {"200": plain_ok}}},
            "/v2/models/{name}": {"get": {"summary": "Open Inference Protocol: model metadata", "parameters": name_param,
                "responses": {"200": plain_ok, "404": error_response("Not served")}}},
            "/v2/models/{name}/ready": {"get": {"summary": "Open Inference Protocol: model readiness", "parameters": name_param,
                "responses": {"200": plain_ok, "404": error_response("Not served")}}},
            "/v2/models/{name}/infer": {"post": {"summary": "Open Inference Protocol: one FP64/BYTES tensor per feature",
                "parameters": name_param, "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": plain_ok, "404": error_response("Not served"), "422": error_response("A tensor is wrong")}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": plain_ok}}},
            "/readyz": {"get": {"summary": "Readiness and the models served", "responses": {"200": plain_ok}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": plain_ok}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": plain_ok}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                "required": ["code", "message", "field"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": ["string", "null"]}}}}},
            "PredictRequest": {"type": "object", "required": ["instances"], "additionalProperties": false, "properties": {
                "instances": {"type": "array", "minItems": 1, "items": {"oneOf": [
                    {"$ref": "#/components/schemas/FeatureInstance"}, {"$ref": "#/components/schemas/RawInstance"},
                    {"$ref": "#/components/schemas/StoredInstance"}]}},
                "top_k": {"type": "integer", "minimum": 0, "default": 3}}},
            "FeatureInstance": {"type": "object", "required": ["learner_id", "features"], "additionalProperties": false, "properties": {
                "learner_id": {"type": "string"},
                "features": {"type": "object", "description": "Every feature of the model: a number (numeric), a string (categorical) or null (missing).",
                    "additionalProperties": {"type": ["number", "string", "null"]}}}},
            "RawInstance": {"type": "object", "required": ["learner_id", "as_of", "profile", "events"], "additionalProperties": false, "properties": {
                "learner_id": {"type": "string"},
                "as_of": {"type": "string", "format": "date-time"},
                "profile": {"type": "object", "required": ["signup_at", "plan", "acquisition_channel"], "properties": {
                    "signup_at": {"type": "string", "format": "date-time"}, "plan": {"enum": ["free", "monthly", "annual"]},
                    "acquisition_channel": {"type": "string"}, "device": {"type": ["string", "null"]}}},
                "events": {"type": "array", "description": "Sorted by ts.", "items": {"type": "object", "required": ["ts", "event_type"], "properties": {
                    "ts": {"type": "string", "format": "date-time"}, "event_type": {"type": "string"}, "course_id": {"type": ["string", "null"]},
                    "duration_s": {"type": ["number", "null"]}, "score": {"type": ["number", "null"]}, "amount": {"type": ["number", "null"]},
                    "latency_ms": {"type": ["number", "null"]}, "stalls": {"type": ["integer", "null"]}}}},
                "courses": {"type": "object", "description": "Lessons per course id, for courses the server's catalogue lacks.",
                    "additionalProperties": {"type": "integer"}}}},
            "StoredInstance": {"type": "object", "required": ["learner_id"], "additionalProperties": false,
                "description": "A learner of the server's learner store: features from its stored history.", "properties": {
                "learner_id": {"type": "string"},
                "as_of": {"type": "string", "format": "date-time", "description": "Default: now."}}},
            "Profile": {"type": "object", "required": ["signup_at", "plan", "acquisition_channel"],
                "additionalProperties": {"type": ["number", "string", "null"]}, "properties": {
                "signup_at": {"type": "string", "format": "date-time"}, "plan": {"type": "string"},
                "acquisition_channel": {"type": "string"}, "device": {"type": ["string", "null"]}}},
            "EventBatch": {"type": "array", "items": {"type": "object", "required": ["learner_id", "ts", "event_type"], "properties": {
                "learner_id": {"type": "string"}, "event_id": {"type": ["string", "null"], "description": "Makes a retry idempotent."},
                "ts": {"type": "string", "format": "date-time"}, "event_type": {"type": "string"}, "count": {"type": ["integer", "null"]},
                "course_id": {"type": ["string", "null"]}, "duration_s": {"type": ["number", "null"]}, "score": {"type": ["number", "null"]},
                "amount": {"type": ["number", "null"]}, "latency_ms": {"type": ["number", "null"]}, "stalls": {"type": ["integer", "null"]}}}},
            "IngestResponse": {"type": "object", "required": ["rows", "accepted", "duplicates", "rejected"], "properties": {
                "rows": {"type": "integer"}, "accepted": {"type": "integer"},
                "duplicates": {"type": "array", "items": {"type": "integer"}, "description": "Indexes of rows whose event_id was already stored."},
                "rejected": {"type": "array", "items": {"type": "object", "required": ["index", "field", "reason"], "properties": {
                    "index": {"type": "integer"}, "field": {"type": "string"}, "reason": {"type": "string"}}}}}},
            "PredictResponse": {"type": "object", "required": ["predictions", "request_id"], "properties": {
                "request_id": {"type": "string"},
                "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}}},
            "Prediction": {"type": "object", "required": ["learner_id", "model", "churn_probability", "risk_band", "margin", "base_value",
                    "contribution_scale", "top_factors", "suggested_action"], "properties": {
                "learner_id": {"type": "string"},
                "model": {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"}, "role": {"enum": ["champion", "challenger"]}}},
                "churn_probability": {"type": "number"}, "risk_band": {"enum": ["low", "medium", "high"]},
                "margin": {"type": "number"}, "base_value": {"type": "number"}, "contribution_scale": {"const": "log_odds"},
                "top_factors": {"type": "array", "items": {"type": "object", "properties": {
                    "feature": {"type": "string"}, "value": {"type": ["number", "string", "null"]},
                    "contribution": {"type": "number"}, "description": {"type": "string"}}}},
                "suggested_action": {"type": "object", "properties": {"action": {"type": "string"}, "reason": {"type": "string"},
                    "policy": {"type": "string"}, "propensity": {"type": "number"}}}}},
        }},
    })
}
