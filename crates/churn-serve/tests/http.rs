//! Every route in process (tower `oneshot`), on the committed sample models.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use churn_serve::{App, ServeConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn config() -> ServeConfig {
    ServeConfig {
        models: models_dir(),
        ..ServeConfig::default()
    }
}

fn app(config: ServeConfig) -> App {
    App::build(config).expect("the committed models load")
}

async fn call(app: &App, request: Request<Body>) -> (StatusCode, Value) {
    let response = app
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    assert!(
        response.headers().contains_key("x-request-id"),
        "every answer has a request id"
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"text": String::from_utf8_lossy(&bytes)}));
    (status, value)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request")
}

/// A feature map with every feature of the champion: some values, the rest null.
fn features() -> Value {
    let card: Value = serde_json::from_str(
        &std::fs::read_to_string(
            churn_model::artifact::resolve("churn-gbdt", &models_dir())
                .expect("committed")
                .join("model.json"),
        )
        .expect("card"),
    )
    .expect("json");
    let mut map = serde_json::Map::new();
    for f in card["features"].as_array().expect("features") {
        map.insert(f["name"].as_str().expect("name").to_owned(), Value::Null);
    }
    map.insert("days_since_last_login".into(), json!(12.5));
    map.insert("days_since_last_activity".into(), json!(12.0));
    map.insert("completion_rate".into(), json!(0.2));
    map.insert("plan".into(), json!("monthly"));
    map.insert("device".into(), json!("ios"));
    Value::Object(map)
}

fn instance(id: &str) -> Value {
    json!({"learner_id": id, "features": features()})
}

#[tokio::test]
async fn predict_answers_in_the_documented_shape() {
    let app = app(config());
    let body = json!({"instances": [instance("L1"), instance("L2")], "top_k": 2}).to_string();
    let (status, value) = call(&app, post("/v1/predict", body)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert!(value["request_id"].is_string());
    let predictions = value["predictions"].as_array().expect("predictions");
    assert_eq!(predictions.len(), 2);
    let p = &predictions[0];
    assert_eq!(p["learner_id"], "L1");
    assert_eq!(p["model"]["name"], "churn-gbdt");
    assert_eq!(p["model"]["role"], "champion");
    assert_eq!(p["contribution_scale"], "log_odds");
    let probability = p["churn_probability"].as_f64().expect("p");
    assert!((0.0..=1.0).contains(&probability));
    let band = p["risk_band"].as_str().expect("band");
    let expected = if probability >= 0.5 {
        "high"
    } else if probability >= 0.2 {
        "medium"
    } else {
        "low"
    };
    assert_eq!(band, expected);
    let factors = p["top_factors"].as_array().expect("factors");
    assert!(!factors.is_empty() && factors.len() <= 2);
    for f in factors {
        for key in ["feature", "value", "contribution", "description"] {
            assert!(f.get(key).is_some(), "factor lacks {key}");
        }
    }
    let action = &p["suggested_action"];
    assert_eq!(action["policy"], "playbook@default");
    assert_eq!(action["propensity"], 1.0);
    assert!(p["margin"].is_number() && p["base_value"].is_number());
}

#[tokio::test]
async fn metadata_health_metrics_and_openapi_routes_answer() {
    let app = app(config());
    for path in [
        "/healthz",
        "/readyz",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v1/models",
        "/v1/models/churn-gbdt",
        "/v2/models/churn-gbdt",
        "/v2/models/churn-gbdt/ready",
        "/openapi.json",
    ] {
        let (status, value) = call(&app, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {value}");
    }
    let (_, card) = call(&app, get("/v1/models/churn-gbdt")).await;
    assert_eq!(card["kind"], "gbdt");
    assert_eq!(card["features"].as_array().map(Vec::len), Some(37));
    let (_, meta) = call(&app, get("/v2/models/churn-gbdt")).await;
    assert_eq!(meta["inputs"].as_array().map(Vec::len), Some(37));
    for path in [
        "/v1/models/nope",
        "/v2/models/nope",
        "/v2/models/nope/ready",
    ] {
        let (status, value) = call(&app, get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(value["error"]["code"], "unknown_model");
    }
    // OIP infer: one tensor per feature, the same probability as /v1/predict.
    let features = features();
    // One tensor per feature of the card, `rows` copies of the instance's value.
    let inputs = |rows: usize| -> Vec<Value> {
        card["features"]
            .as_array()
            .expect("features")
            .iter()
            .map(|f| {
                let name = f["name"].as_str().expect("name");
                let datatype = if f["kind"] == "numeric" {
                    "FP64"
                } else {
                    "BYTES"
                };
                json!({"name": name, "shape": [rows], "datatype": datatype,
                       "data": vec![features[name].clone(); rows]})
            })
            .collect()
    };
    let body = json!({"id": "x", "inputs": inputs(2)}).to_string();
    let (status, value) = call(&app, post("/v2/models/churn-gbdt/infer", body)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["id"], "x");
    let via_oip = value["outputs"][0]["data"][0].as_f64().expect("p");
    let body = json!({"instances": [instance("L1")]}).to_string();
    let (_, v1) = call(&app, post("/v1/predict", body)).await;
    let via_v1 = v1["predictions"][0]["churn_probability"]
        .as_f64()
        .expect("p");
    assert!((via_oip - via_v1).abs() < 1e-12);
    // A batch large enough to be scored off the async workers (over 8 KiB)
    // gives the same answers, row by row.
    let rows = 300;
    let body = json!({"id": "big", "inputs": inputs(rows)}).to_string();
    assert!(body.len() > 8 << 10, "{} bytes", body.len());
    let (status, value) = call(&app, post("/v2/models/churn-gbdt/infer", body)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let data = value["outputs"][0]["data"].as_array().expect("data");
    assert_eq!(data.len(), rows);
    assert!(data.iter().all(|p| p.as_f64() == Some(via_oip)));

    // Every route of the router is documented.
    let (_, doc) = call(&app, get("/openapi.json")).await;
    for path in [
        "/v1/predict",
        "/v1/models",
        "/v1/models/{name}",
        "/v1/admin/reload",
        "/v1/events",
        "/v1/learners/{id}",
        "/v1/learners/{id}/prediction",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    // Without a learner store its routes say so.
    for path in ["/v1/learners/L1", "/v1/learners/L1/prediction"] {
        let (status, value) = call(&app, get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(value["error"]["code"], "store_disabled", "{path}");
    }
    let (status, metrics) = call(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics["text"].as_str().expect("text");
    for name in [
        "churn_http_requests_total",
        "churn_http_request_duration_seconds_bucket",
        "churn_predictions_total",
        "churn_model_info",
        "churn_prediction_log_dropped_total",
        "churn_load_shed_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert!(text.contains("role=\"champion\""));
}

/// Status, error code and field of a request that must fail.
async fn refused(app: &App, request: Request<Body>) -> (StatusCode, String, Option<String>) {
    let (status, value) = call(app, request).await;
    assert!(
        status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "{status}: {value}"
    );
    let code = value["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error: {value}"))
        .to_owned();
    (
        status,
        code,
        value["error"]["field"].as_str().map(str::to_owned),
    )
}

fn with(key: &str, value: Value) -> String {
    let mut f = features();
    f[key] = value;
    json!({"instances": [{"learner_id": "L1", "features": f}]}).to_string()
}

fn raw(events: Value, as_of: &str) -> String {
    json!({"instances": [{"learner_id": "L1", "as_of": as_of,
        "profile": {"signup_at": "2026-01-01T00:00:00Z", "plan": "free",
                    "acquisition_channel": "organic", "device": null},
        "events": events}]})
    .to_string()
}

fn login(ts: &str) -> Value {
    json!({"ts": ts, "event_type": "login"})
}

/// A bad request: name, request, expected status, error code and field.
type Case = (
    &'static str,
    Request<Body>,
    StatusCode,
    &'static str,
    Option<String>,
);

#[tokio::test]
async fn every_bad_input_gets_a_4xx_json_error_naming_the_field() {
    let mut config = config();
    config.max_batch = 5;
    config.max_body_bytes = 64 * 1024;
    let app = app(config);
    let mut unknown = features();
    unknown["nonsense"] = json!(1);
    let mut missing = features();
    missing.as_object_mut().expect("map").remove("plan");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nan = with("completion_rate", json!(0))
        .replace("\"completion_rate\":0", "\"completion_rate\":NaN");
    let huge = with("completion_rate", json!(0))
        .replace("\"completion_rate\":0", "\"completion_rate\":1e400");
    let feb = "2026-02-01T00:00:00Z";
    let bad = StatusCode::BAD_REQUEST;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let f0 = |name: &str| Some(format!("instances[0].features.{name}"));
    let cases: Vec<Case> = vec![
        (
            "malformed",
            post("/v1/predict", "{\"instances\": ["),
            bad,
            "malformed_json",
            None,
        ),
        (
            "not an object",
            post("/v1/predict", "[1, 2]"),
            unprocessable,
            "invalid_field",
            Some(String::new()),
        ),
        (
            "NaN literal",
            post("/v1/predict", nan),
            bad,
            "malformed_json",
            None,
        ),
        (
            "huge number",
            post("/v1/predict", huge),
            bad,
            "malformed_json",
            None,
        ),
        (
            "wrong type",
            post("/v1/predict", with("completion_rate", json!("high"))),
            unprocessable,
            "invalid_field",
            f0("completion_rate"),
        ),
        (
            "category as number",
            post("/v1/predict", with("plan", json!(3))),
            unprocessable,
            "invalid_field",
            f0("plan"),
        ),
        (
            "unknown feature",
            post(
                "/v1/predict",
                json!({"instances": [{"learner_id": "L1", "features": unknown}]}).to_string(),
            ),
            unprocessable,
            "invalid_field",
            f0("nonsense"),
        ),
        (
            "missing feature",
            post(
                "/v1/predict",
                json!({"instances": [{"learner_id": "L1", "features": missing}]}).to_string(),
            ),
            unprocessable,
            "invalid_field",
            f0("plan"),
        ),
        (
            "empty batch",
            post("/v1/predict", "{\"instances\": []}"),
            unprocessable,
            "invalid_field",
            Some("instances".into()),
        ),
        (
            "oversized batch",
            post(
                "/v1/predict",
                json!({"instances": vec![instance("L1"); 6]}).to_string(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            Some("instances".into()),
        ),
        (
            "oversized body",
            post("/v1/predict", " ".repeat(70 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            None,
        ),
        (
            "deep nesting",
            post("/v1/predict", deep),
            bad,
            "malformed_json",
            None,
        ),
        (
            "invalid UTF-8",
            post("/v1/predict", vec![b'{', 0xff, 0xfe, b'}']),
            bad,
            "invalid_utf8",
            None,
        ),
        (
            "wrong content type",
            Request::post("/v1/predict")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("{}"))
                .expect("r"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            "no learner id",
            post(
                "/v1/predict",
                json!({"instances": [{"features": features()}]}).to_string(),
            ),
            unprocessable,
            "invalid_field",
            Some("instances[0].learner_id".into()),
        ),
        (
            "bad top_k",
            post(
                "/v1/predict",
                json!({"instances": [instance("L1")], "top_k": -1}).to_string(),
            ),
            unprocessable,
            "invalid_field",
            Some("top_k".into()),
        ),
        (
            "unknown key",
            post(
                "/v1/predict",
                json!({"instances": [instance("L1")], "model": "x"}).to_string(),
            ),
            unprocessable,
            "invalid_field",
            Some("model".into()),
        ),
        (
            "bad as_of",
            post("/v1/predict", raw(json!([]), "yesterday")),
            unprocessable,
            "invalid_field",
            Some("instances[0].as_of".into()),
        ),
        (
            "as_of before signup",
            post("/v1/predict", raw(json!([]), "2025-01-01T00:00:00Z")),
            unprocessable,
            "invalid_field",
            Some("instances[0].as_of".into()),
        ),
        (
            "event type that is neither known nor a valid custom name",
            post(
                "/v1/predict",
                raw(
                    json!([{"ts": "2026-01-02T00:00:00Z", "event_type": "Tele Port!"}]),
                    feb,
                ),
            ),
            unprocessable,
            "invalid_field",
            Some("instances[0].events[0].event_type".into()),
        ),
        (
            "a count of zero",
            post(
                "/v1/predict",
                raw(
                    json!([{"ts": "2026-01-02T00:00:00Z", "event_type": "login", "count": 0}]),
                    feb,
                ),
            ),
            unprocessable,
            "invalid_field",
            Some("instances[0].events[0].count".into()),
        ),
        (
            "events out of order",
            post(
                "/v1/predict",
                raw(
                    json!([login("2026-01-05T00:00:00Z"), login("2026-01-03T00:00:00Z")]),
                    feb,
                ),
            ),
            unprocessable,
            "invalid_field",
            Some("instances[0].events[1].ts".into()),
        ),
        (
            "unknown course",
            post(
                "/v1/predict",
                raw(
                    json!([{"ts": "2026-01-02T00:00:00Z", "event_type": "course_enroll", "course_id": "C999"}]),
                    feb,
                ),
            ),
            unprocessable,
            "invalid_field",
            Some("instances[0].events[0].course_id".into()),
        ),
        (
            "score above 1",
            post(
                "/v1/predict",
                raw(
                    json!([{"ts": "2026-01-02T00:00:00Z", "event_type": "quiz_attempt", "score": 3}]),
                    feb,
                ),
            ),
            unprocessable,
            "invalid_field",
            Some("instances[0].events[0].score".into()),
        ),
        (
            "unknown model",
            get("/v1/models/ghost"),
            StatusCode::NOT_FOUND,
            "unknown_model",
            Some("name".into()),
        ),
        (
            "wrong method",
            get("/v1/predict"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        ),
        (
            "admin off",
            post("/v1/admin/reload", "{}"),
            StatusCode::NOT_FOUND,
            "admin_disabled",
            None,
        ),
    ];
    for (name, request, status, code, field) in cases {
        let (s, c, f) = refused(&app, request).await;
        assert_eq!((s, c.as_str()), (status, code), "{name}");
        if field.is_some() {
            assert_eq!(f, field, "{name}");
        }
    }
    // Still healthy and answering.
    let body = json!({"instances": [instance("L1")]}).to_string();
    assert_eq!(
        call(&app, post("/v1/predict", body)).await.0,
        StatusCode::OK
    );
    // A raw instance whose course is given in the request is scored.
    let events = json!([
        {"ts": "2026-01-02T00:00:00Z", "event_type": "course_enroll", "course_id": "C1"},
        login("2026-01-20T00:00:00Z")
    ]);
    let ok = raw(events, feb).replace("\"events\"", "\"courses\":{\"C1\":10},\"events\"");
    let (status, value) = call(&app, post("/v1/predict", ok)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
}

#[tokio::test]
async fn tokens_guard_predict_and_admin_routes() {
    let mut config = config();
    config.predict_token = Some("predict-token-0123456789".into());
    config.admin_token = Some("admin-token-0123456789ab".into());
    let app = app(config);
    let body = json!({"instances": [instance("L1")]}).to_string();
    let (status, _, _) = refused(&app, post("/v1/predict", body.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut request = post("/v1/predict", body);
    let token = "Bearer predict-token-0123456789".parse().expect("header");
    request.headers_mut().insert(header::AUTHORIZATION, token);
    assert_eq!(call(&app, request).await.0, StatusCode::OK);
    let reload = |token: &str| {
        let mut r = Request::post("/v1/admin/reload")
            .body(Body::empty())
            .expect("request");
        r.headers_mut()
            .insert(header::AUTHORIZATION, token.parse().expect("header"));
        r
    };
    assert_eq!(
        refused(&app, reload("Bearer wrong-token-0123456789ab"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, value) = call(&app, reload("Bearer admin-token-0123456789ab")).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["reloaded"], true);
}

#[tokio::test]
async fn challenger_share_is_sticky_and_near_its_setting() {
    let mut config = config();
    config.challenger = Some("churn-logistic".into());
    config.challenger_share = 0.3;
    let app = app(config);
    let n = 1000;
    let ids: Vec<String> = (0..n).map(|i| format!("learner-{i}")).collect();
    let mut challenger = 0;
    for round in 0..2 {
        for chunk in ids.chunks(500) {
            let instances: Vec<Value> = chunk.iter().map(|id| instance(id)).collect();
            let body = json!({"instances": instances, "top_k": 0}).to_string();
            let (status, value) = call(&app, post("/v1/predict", body)).await;
            assert_eq!(status, StatusCode::OK, "{value}");
            for p in value["predictions"].as_array().expect("predictions") {
                let role = p["model"]["role"].as_str().expect("role");
                let id = p["learner_id"].as_str().expect("id");
                let expected = if churn_serve::bucket(id) < 0.3 {
                    "challenger"
                } else {
                    "champion"
                };
                assert_eq!(role, expected, "sticky by learner id");
                if role == "challenger" && round == 0 {
                    challenger += 1;
                    assert_eq!(p["model"]["name"], "churn-logistic");
                }
            }
        }
    }
    let share = challenger as f64 / n as f64;
    assert!(
        (share - 0.3).abs() < 4.0 * (0.21 / n as f64).sqrt(),
        "challenger share {share}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Arbitrary bytes, and JSON that is nearly right, get a 4xx JSON error.
    #[test]
    fn no_body_makes_the_server_fail(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        json_body in "\\{\"instances\": \\[\\{\"learner_id\": \"[a-z]{0,3}\", \"features\": \\{\"[a-z_]{0,20}\": (null|-?[0-9]{1,5}|\"[a-z]{0,4}\"|true|\\[\\])\\}\\}\\]\\}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let app = App::build(config()).expect("app");
            for bytes in [body.clone(), json_body.clone().into_bytes()] {
                let (status, value) = call(&app, post("/v1/predict", bytes)).await;
                assert!(status.is_client_error(), "{status}: {value}");
                assert!(value["error"]["code"].is_string(), "{value}");
            }
        });
    }
}

/// The probability of one raw instance, and its whole answer.
async fn raw_answer(app: &App, profile: Value, events: Value) -> (f64, Value) {
    let body = json!({"instances": [{"learner_id": "L1", "as_of": "2026-02-01T00:00:00Z",
        "profile": profile, "events": events}]})
    .to_string();
    let (status, value) = call(app, post("/v1/predict", body)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let answer = value["predictions"][0].clone();
    (answer["churn_probability"].as_f64().expect("p"), answer)
}

#[tokio::test]
async fn open_vocabularies_counts_and_custom_types_are_served() {
    let app = app(config());
    let known = json!({"signup_at": "2026-01-01T00:00:00Z", "plan": "monthly",
        "acquisition_channel": "organic", "device": "ios"});
    let open = json!({"signup_at": "2026-01-01T00:00:00Z", "plan": " Pro ",
        "acquisition_channel": "partner-x", "device": "tablet"});
    let logins = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|_| json!({"ts": "2026-01-28T09:00:00Z", "event_type": "login"}))
            .collect()
    };

    // A plan, channel and device the model never saw: answered, and said so.
    let (_, answer) = raw_answer(&app, open.clone(), json!(logins(1))).await;
    assert_eq!(
        answer["unseen_categories"],
        json!({"plan": "Pro", "acquisition_channel": "partner-x", "device": "tablet"})
    );
    let (_, answer) = raw_answer(&app, known.clone(), json!(logins(1))).await;
    assert!(answer.get("unseen_categories").is_none(), "{answer}");

    // One row with count 3 is three rows of the same event.
    let (three_rows, _) = raw_answer(&app, known.clone(), json!(logins(3))).await;
    let counted = json!([{"ts": "2026-01-28T09:00:00Z", "event_type": "login", "count": 3}]);
    let (one_row, _) = raw_answer(&app, known.clone(), counted).await;
    assert_eq!(three_rows.to_bits(), one_row.to_bits());
    let (single, _) = raw_answer(&app, known.clone(), json!(logins(1))).await;
    assert_ne!(single.to_bits(), one_row.to_bits(), "the count is read");

    // A custom type the model's data did not call activity changes nothing
    // the model reads; it is accepted, not refused.
    let mut with_custom = logins(1);
    with_custom.push(json!({"ts": "2026-01-30T09:00:00Z", "event_type": "video_play", "count": 5}));
    let (custom, _) = raw_answer(&app, known, json!(with_custom)).await;
    assert_eq!(custom.to_bits(), single.to_bits());

    // A feature-map instance with an unseen plan is answered too.
    let mut features = features();
    features["plan"] = json!("enterprise");
    let body = json!({"instances": [{"learner_id": "L9", "features": features}]}).to_string();
    let (status, value) = call(&app, post("/v1/predict", body)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(
        value["predictions"][0]["unseen_categories"],
        json!({"plan": "enterprise"})
    );
}
