//! `churn serve --store`: learner-keyed predictions equal `churn predict` on
//! the same events, events posted over HTTP become the same history, a
//! killed server loses no acknowledged batch and keeps none half, erasure
//! leaves nothing, and bad bodies get 4xx with the row and field.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::{
    ServeProcess, churn, churn_predict_on_sample, compare_with_predict, http, path_str, predict,
    raw_instances_in, read_json, read_predictions, text,
};

const TOKEN: &str = "ingest-token-for-the-tests";
const AUTH: &str = "Authorization: Bearer ingest-token-for-the-tests";
const JSON: &str = "Content-Type: application/json";

/// A settings file with the ingest token, in `dir`.
fn settings(dir: &Path) -> String {
    settings_with(dir, "")
}

/// A settings file with the ingest token and `extra` lines, in `dir`.
fn settings_with(dir: &Path, extra: &str) -> String {
    let path = dir.join("serve.toml");
    std::fs::write(&path, format!("ingest_token = \"{TOKEN}\"\n{extra}")).expect("settings");
    path.display().to_string()
}

fn serve_store(store: &Path, settings: &str) -> ServeProcess {
    ServeProcess::start(&["--store", path_str(store), "--config", settings])
}

/// [`serve_store`] that logs its predictions to `log`.
fn serve_store_logging(store: &Path, settings: &str, log: &Path) -> ServeProcess {
    ServeProcess::start(&[
        "--store",
        path_str(store),
        "--config",
        settings,
        "--prediction-log",
        path_str(log),
    ])
}

/// `/v1/predict` instances that carry only the learner id and the as-of time.
fn keyed_instances<V>(learners: &HashMap<String, V>, as_of: &str) -> Vec<Value> {
    learners
        .keys()
        .map(|id| json!({"learner_id": id, "as_of": as_of}))
        .collect()
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(json!({"raw": body}))
}

/// `churn store load` of the committed sample into `store`.
fn load_sample(store: &Path, work: &Path) -> String {
    let out = churn(&[
        "--quiet",
        "store",
        "load",
        "--data",
        "data",
        "--store",
        path_str(store),
        "--work",
        path_str(work),
        "--now",
        "2026-07-01T00:00:00Z",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn learner_keyed_predictions_equal_churn_predict_and_posted_events_become_the_same_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.db");
    let said = load_sample(&store, &dir.path().join("load"));
    assert!(
        said.contains("572353 = 572353 stored + 0 already there + 0 refused"),
        "{said}"
    );
    let again = load_sample(&store, &dir.path().join("load"));
    assert!(
        again.contains("= 0 stored + 572353 already there"),
        "{again}"
    );

    let as_of = "2026-05-01T00:00:00Z";
    let csv = churn_predict_on_sample(as_of, dir.path(), &[]);
    let expected = read_predictions(&csv);
    let log = dir.path().join("predictions.jsonl");
    let mut server = serve_store_logging(&store, &settings(dir.path()), &log);

    // /v1/predict instances that carry only the learner id (and the as-of time).
    let keyed = keyed_instances(&expected, as_of);
    compare_with_predict(server.addr, &keyed, &expected);
    // GET /v1/learners/{id}/prediction answers the same.
    for (id, (probability, factor, _)) in expected.iter().take(20) {
        let (status, body) = http(
            server.addr,
            "GET",
            &format!("/v1/learners/{id}/prediction?as_of={as_of}&top_k=2"),
            &[],
            "",
        );
        assert_eq!(status, 200, "{body}");
        let p = &json_of(&body)["predictions"][0];
        assert!((p["churn_probability"].as_f64().unwrap_or(-1.0) - probability).abs() <= 5e-7);
        assert_eq!(p["top_factors"][0]["feature"], json!(factor));
        assert_eq!(p["top_factors"].as_array().map(Vec::len), Some(2));
    }

    // A learner posted over HTTP (its profile, then its events as JSON lines
    // in two batches, the second sent twice) is scored as the same learner
    // sent with its raw events.
    let (raw, _courses, _tmp) = raw_instances_in(Path::new("data"), as_of);
    let original = raw
        .iter()
        .filter(|r| expected.contains_key(r["learner_id"].as_str().unwrap_or("")))
        .max_by_key(|r| r["events"].as_array().map_or(0, Vec::len))
        .expect("an active learner");
    let copy = "posted-copy";
    let (status, body) = http(
        server.addr,
        "PUT",
        &format!("/v1/learners/{copy}"),
        &[JSON, AUTH],
        &original["profile"].to_string(),
    );
    assert_eq!(status, 201, "{body}");
    let events = original["events"].as_array().expect("events");
    assert!(events.len() > 50, "{} events", events.len());
    let lines: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut row = e.clone();
            row["learner_id"] = json!(copy);
            row["event_id"] = json!(format!("{copy}-{i}"));
            row.to_string()
        })
        .collect();
    let half = lines.len() / 2;
    for (batch, times) in [(&lines[..half], 1), (&lines[half..], 2)] {
        for attempt in 0..times {
            let (status, body) = http(
                server.addr,
                "POST",
                "/v1/events",
                &["Content-Type: application/x-ndjson", AUTH],
                &batch.join("\n"),
            );
            assert_eq!(status, 200, "{body}");
            let answer = json_of(&body);
            let (accepted, duplicates) = if attempt == 0 {
                (batch.len(), 0)
            } else {
                (0, batch.len())
            };
            assert_eq!(answer["accepted"], json!(accepted), "{answer}");
            assert_eq!(
                answer["duplicates"].as_array().map(Vec::len),
                Some(duplicates),
                "{answer}"
            );
        }
    }
    let (status, stored) = http(server.addr, "GET", &format!("/v1/learners/{copy}"), &[], "");
    assert_eq!(status, 200);
    assert_eq!(json_of(&stored)["events"], json!(events.len()));
    let (_, by_raw) = predict(server.addr, &json!({"instances": [original]}));
    let (_, by_id) = predict(
        server.addr,
        &json!({"instances": [{"learner_id": copy, "as_of": as_of}]}),
    );
    assert_eq!(
        by_raw["predictions"][0]["churn_probability"], by_id["predictions"][0]["churn_probability"],
        "{by_raw} vs {by_id}"
    );
    assert_eq!(
        by_raw["predictions"][0]["top_factors"],
        by_id["predictions"][0]["top_factors"]
    );

    // Erasure: the learner is gone for every route.
    let (status, _) = http(
        server.addr,
        "DELETE",
        &format!("/v1/learners/{copy}"),
        &[AUTH],
        "",
    );
    assert_eq!(status, 200);
    for path in [
        format!("/v1/learners/{copy}"),
        format!("/v1/learners/{copy}/prediction"),
    ] {
        let (status, body) = http(server.addr, "GET", &path, &[], "");
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = http(
        server.addr,
        "DELETE",
        &format!("/v1/learners/{copy}"),
        &[AUTH],
        "",
    );
    assert_eq!(status, 404);

    // `churn monitor` reads the log of learner-keyed predictions as it reads
    // any: each line carries the as-of time the store was read at.
    server.stop();
    let lines = std::fs::read_to_string(&log)
        .expect("prediction log")
        .lines()
        .count();
    assert!(lines > expected.len(), "{lines} logged");
    let out = churn(&[
        "monitor",
        "--log",
        path_str(&log),
        "--data",
        "data",
        "--now",
        "2026-07-01T00:00:00Z",
        "--every",
        "7d",
        "--out",
        path_str(&dir.path().join("monitor")),
    ]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The posted copy is not a learner of data/: its one line is refused.
    assert!(
        said.contains(&format!(
            "prediction log: {lines} lines = {} read + 1 rejected",
            lines - 1
        )),
        "{said}"
    );
}

/// `churn ab --prediction-log` reads the log of an exploring server asked by
/// learner id (no events in the requests) as it reads any: one assignment
/// per learner, the exploration in the experiment's name, and the
/// propensity-weighted sample-ratio check consistent.
/// The keyed predictions of `learners` at `as_of`, without the request id.
fn keyed_predictions(addr: SocketAddr, learners: &[Value]) -> Vec<Value> {
    learners
        .chunks(200)
        .flat_map(|chunk| {
            let (status, value) = predict(addr, &json!({"instances": chunk, "top_k": 3}));
            assert_eq!(status, 200, "{value}");
            value["predictions"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

#[test]
fn a_compacted_store_answers_exactly_as_the_full_history_after_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.db");
    load_sample(&store, &dir.path().join("load"));
    let as_of = "2026-05-01T00:00:00Z";
    let expected = read_predictions(&churn_predict_on_sample(as_of, dir.path(), &[]));
    let mut learners: Vec<Value> = keyed_instances(&expected, as_of);
    learners.sort_by_key(|v| v["learner_id"].to_string());
    let mut server = serve_store(&store, &settings(dir.path()));
    let full = keyed_predictions(server.addr, &learners);
    server.stop();

    // 2026-04-01 + 30 days is the as-of time itself: the tightest cutoff.
    let out = churn(&[
        "--quiet",
        "store",
        "compact",
        "--store",
        path_str(&store),
        "--before",
        "2026-04-01T00:00:00Z",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let numbers: Vec<u64> = said
        .lines()
        .next()
        .and_then(|line| line.split("summarised: ").nth(1))
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 2, "{said}");
    let (before, after) = (numbers[0], numbers[1]);
    assert!(after * 3 < before, "compaction kept too much: {said}");

    let server = serve_store(&store, &settings(dir.path()));
    let compacted = keyed_predictions(server.addr, &learners);
    assert_eq!(full.len(), learners.len());
    assert_eq!(full, compacted, "the same numbers and factors, bit for bit");
    compare_with_predict(server.addr, &learners, &expected);

    // Earlier as-of times and events are refused, naming the field.
    let id = learners[0]["learner_id"].clone();
    let (status, answer) = predict(
        server.addr,
        &json!({"instances": [{"learner_id": id, "as_of": "2026-04-30T23:59:59Z"}]}),
    );
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["error"]["field"],
        json!("instances[0].as_of"),
        "{answer}"
    );
    let row = json!({"learner_id": id, "event_id": "late-1", "ts": "2026-03-31T12:00:00Z", "event_type": "login"});
    let (status, body) = http(
        server.addr,
        "POST",
        "/v1/events",
        &[JSON, AUTH],
        &format!("[{row}]"),
    );
    assert_eq!(status, 200, "{body}");
    let answer = json_of(&body);
    assert_eq!(answer["accepted"], json!(0), "{answer}");
    assert_eq!(answer["rejected"][0]["field"], json!("[0].ts"), "{answer}");
}

#[test]
fn a_server_with_retention_days_compacts_the_store_off_the_request_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.db");
    load_sample(&store, &dir.path().join("load"));
    // The cutoff lands on 2026-04-01 (give or take the time of day).
    let cutoff = churn_core::parse_timestamp("2026-04-01T00:00:00Z").expect("ts");
    let days = (churn_core::now_ms() - cutoff) / churn_core::DAY_MS;
    let as_of = "2026-05-02T00:00:00Z";
    let expected = read_predictions(&churn_predict_on_sample(as_of, dir.path(), &[]));
    let stored_rows = |addr: SocketAddr, id: &str| {
        let (status, body) = http(addr, "GET", &format!("/v1/learners/{id}"), &[], "");
        assert_eq!(status, 200, "{body}");
        json_of(&body)["events"].as_u64().unwrap_or(0)
    };
    // The most active of some learners, read before any compaction.
    let mut before = serve_store(&store, &settings_with(dir.path(), ""));
    let (full, id) = expected
        .keys()
        .take(100)
        .map(|id| (stored_rows(before.addr, id), id))
        .max()
        .expect("a learner");
    before.stop();
    let settings = settings_with(dir.path(), &format!("retention_days = {days}\n"));
    let server = serve_store(&store, &settings);
    let mut compacted = full;
    for _ in 0..300 {
        compacted = stored_rows(server.addr, id);
        if compacted < full {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(compacted < full, "{full} rows still stored");
    compare_with_predict(server.addr, &keyed_instances(&expected, as_of), &expected);
    let (status, answer) = predict(
        server.addr,
        &json!({"instances": [{"learner_id": id, "as_of": "2026-04-15T00:00:00Z"}]}),
    );
    assert_eq!(status, 422, "{answer}");
}

#[test]
fn churn_ab_reads_the_log_of_an_exploring_server_asked_by_learner_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.db");
    load_sample(&store, &dir.path().join("load"));
    let as_of = "2026-05-16T00:00:00Z";
    let expected = read_predictions(&churn_predict_on_sample(as_of, dir.path(), &[]));
    let log = dir.path().join("predictions.jsonl");
    let exploring = settings_with(dir.path(), "epsilon = 0.5\n");
    let mut server = serve_store_logging(&store, &exploring, &log);
    let keyed = keyed_instances(&expected, as_of);
    for chunk in keyed.chunks(200) {
        let (status, value) = predict(server.addr, &json!({"instances": chunk}));
        assert_eq!(status, 200, "{value}");
    }
    server.stop();
    let logged = std::fs::read_to_string(&log)
        .expect("prediction log")
        .lines()
        .count();
    assert_eq!(logged, keyed.len());

    let out = churn(&[
        "--quiet",
        "ab",
        "--data",
        "data",
        "--now",
        "2026-07-01T00:00:00Z",
        "--no-uplift",
        "--out",
        path_str(&dir.path().join("ab")),
        "--prediction-log",
        path_str(&log),
    ]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        said.contains(&format!(
            "prediction log: {logged} lines = {logged} assignments + 0 repeat predictions + 0 rejected"
        )),
        "{said}"
    );
    let ab: Value = read_json(dir.path().join("ab/ab.json"));
    assert_eq!(ab["assigned"].as_u64(), Some(keyed.len() as u64));
    assert!(
        ab["experiment"]
            .as_str()
            .is_some_and(|id| id.contains("+explore(0.5)")),
        "{}",
        ab["experiment"]
    );
    assert_eq!(ab["readout"]["sample_ratio"]["mismatch"], json!(false));
}

#[test]
fn bad_ingest_bodies_get_4xx_with_the_row_and_field_and_nothing_of_them_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.db");
    let server = serve_store(&store, &settings(dir.path()));
    let post = |headers: &[&str], body: &str| {
        let (status, body) = http(server.addr, "POST", "/v1/events", headers, body);
        (status, json_of(&body))
    };
    let profile = json!({"signup_at": "2026-01-01T00:00:00Z", "plan": "monthly", "acquisition_channel": "organic"});
    let (status, _) = http(
        server.addr,
        "PUT",
        "/v1/learners/A",
        &[JSON, AUTH],
        &profile.to_string(),
    );
    assert_eq!(status, 201);
    let (status, body) = http(
        server.addr,
        "PUT",
        "/v1/learners/B",
        &[JSON, AUTH],
        r#"{"plan": "x"}"#,
    );
    assert_eq!(
        (status, json_of(&body)["error"]["field"].clone()),
        (422, json!("signup_at"))
    );

    let event = |id: &str, ts: &str| json!({"learner_id": "A", "event_id": id, "ts": ts, "event_type": "login"});
    assert_eq!(post(&[JSON], "[]").0, 401, "no token");
    assert_eq!(
        post(
            &[JSON, "Authorization: Bearer wrong-token-0000000000"],
            "[]"
        )
        .0,
        401
    );
    assert_eq!(post(&["Content-Type: text/plain", AUTH], "[]").0, 415);
    let (status, answer) = post(&[JSON, AUTH], "[{\"learner_id\": ");
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("malformed_json"))
    );
    assert_eq!(post(&[JSON, AUTH], "{}").0, 422, "an object, not an array");
    let rows = json!([
        event("a", "2026-02-01T00:00:00Z"),
        {"learner_id": "A", "ts": "2026-02-01T00:00:00Z", "event_type": "Login!"},
        {"learner_id": "A", "ts": "2026-02-01T00:00:00Z", "event_type": "login", "score": 2},
        {"learner_id": "nobody", "ts": "2026-02-01T00:00:00Z", "event_type": "login"},
        event("b", "2025-12-01T00:00:00Z"),
        event("c", "2099-01-01T00:00:00Z"),
        {"learner_id": "A", "ts": "2026-02-01T00:00:00Z", "event_type": "login", "colour": "red"},
    ]);
    let (status, answer) = post(&[JSON, AUTH], &rows.to_string());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], json!(1));
    // The accepted row waits in the inbox until a merge: the gauge says so.
    let (_, metrics) = http(server.addr, "GET", "/metrics", &[], "");
    assert!(
        metrics.lines().any(|l| l == "churn_store_backlog_events 1"),
        "{metrics}"
    );
    let rejected: Vec<(u64, String)> = answer["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap_or(99),
                r["field"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "[1].event_type".to_owned()),
            (2, "[2].score".to_owned()),
            (3, "[3].learner_id".to_owned()),
            (4, "[4].ts".to_owned()),
            (5, "[5].ts".to_owned()),
            (6, "[6].colour".to_owned()),
        ]
    );
    let (_, stored) = http(server.addr, "GET", "/v1/learners/A", &[], "");
    assert_eq!(
        json_of(&stored)["events"],
        json!(1),
        "only the good row is stored"
    );
    // The server keeps serving.
    let (status, _) = http(server.addr, "GET", "/healthz", &[], "");
    assert_eq!(status, 200);
    // One process at a time opens an embedded store: a second server on it
    // stops at start and says why.
    let second = std::process::Command::new(common::churn_bin())
        .args([
            "serve",
            "--store",
            path_str(&store),
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("churn serve runs");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success()
            && said.contains("open in another process")
            && said.contains("store.db-lock"),
        "{said}"
    );
    // A server without ingest_token has no write routes (on the same store,
    // once the first has stopped).
    drop(server);
    let plain = ServeProcess::start(&["--store", path_str(&store)]);
    let (status, body) = http(plain.addr, "POST", "/v1/events", &[JSON, AUTH], "[]");
    assert_eq!(
        (status, json_of(&body)["error"]["code"].clone()),
        (404, json!("ingest_disabled"))
    );
}

/// One request that may fail (the server may be gone): the status, or none.
fn try_http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{JSON}\r\n{AUTH}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

const PER_BATCH: usize = 200;

fn batch_body(k: i64) -> String {
    let rows: Vec<Value> = (0..PER_BATCH)
        .map(|j| {
            json!({"learner_id": format!("K{k}"), "event_id": format!("K{k}-{j}"),
                "ts": format!("2026-03-01T00:{:02}:{:02}Z", j / 60, j % 60), "event_type": "login"})
        })
        .collect();
    Value::Array(rows).to_string()
}

#[test]
fn a_killed_server_loses_no_acknowledged_batch_and_keeps_none_half() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.db");
    let settings = settings(dir.path());
    let mut server = serve_store(&store, &settings);
    let addr = server.addr;
    let acknowledged = Arc::new(AtomicI64::new(-1));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let profile = json!({"signup_at": "2026-01-01T00:00:00Z", "plan": "monthly", "acquisition_channel": "organic"}).to_string();
            let mut k = 0i64;
            while !stop.load(Ordering::Relaxed) {
                if try_http(addr, "PUT", &format!("/v1/learners/K{k}"), &profile)
                    .is_none_or(|s| s >= 300)
                {
                    break;
                }
                if try_http(addr, "POST", "/v1/events", &batch_body(k)) != Some(200) {
                    break;
                }
                acknowledged.store(k, Ordering::SeqCst);
                k += 1;
            }
            k // the batch in flight when the server went away
        })
    };
    // Kill once a good number of batches is in, while the writer is writing.
    while acknowledged.load(Ordering::SeqCst) < 30 {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    stop.store(true, Ordering::Relaxed);
    let in_flight = writer.join().expect("writer");
    let acked = acknowledged.load(Ordering::SeqCst);
    assert!(acked >= 30 && in_flight > acked);

    let server = serve_store(&store, &settings);
    for k in 0..=in_flight {
        let (status, body) = http(server.addr, "GET", &format!("/v1/learners/K{k}"), &[], "");
        let events = json_of(&body)["events"].as_u64();
        if k <= acked {
            assert_eq!(
                (status, events),
                (200, Some(PER_BATCH as u64)),
                "acknowledged batch {k}"
            );
        } else {
            // The batch in flight: whole or absent, never half.
            assert!(
                status == 404 || events == Some(0) || events == Some(PER_BATCH as u64),
                "batch {k} in flight: {status} {body}"
            );
        }
    }
    // Every acknowledged event id is there exactly once: a retry is all duplicates.
    let (status, body) = http(
        server.addr,
        "POST",
        "/v1/events",
        &[JSON, AUTH],
        &batch_body(0),
    );
    assert_eq!(status, 200);
    let answer = json_of(&body);
    assert_eq!(answer["accepted"], json!(0), "{answer}");
    assert_eq!(
        answer["duplicates"].as_array().map(Vec::len),
        Some(PER_BATCH)
    );
}

#[test]
fn a_foreign_store_file_stops_the_server_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a database, only some notes\n".repeat(200)).expect("write");
    let out = churn(&[
        "serve",
        "--store",
        path_str(&notes),
        "--addr",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("notes.txt") && said.contains("not a churn learner store"),
        "{said}"
    );
}

#[path = "support/postgres_server.rs"]
mod postgres_server;

#[test]
fn two_servers_on_one_postgresql_see_each_others_learners() {
    let postgres = match postgres_server::PostgresServer::start() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("SKIPPED: two servers on one PostgreSQL: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings(dir.path());
    let url = postgres.url();
    let a = ServeProcess::start(&["--store", &url, "--config", &settings]);
    let b = ServeProcess::start(&["--store", &url, "--config", &settings]);
    let profile = json!({"signup_at": "2026-01-01T00:00:00Z", "plan": "monthly",
        "acquisition_channel": "organic", "device": "web"});
    let (status, _) = http(
        a.addr,
        "PUT",
        "/v1/learners/P1",
        &[JSON, AUTH],
        &profile.to_string(),
    );
    assert_eq!(status, 201);
    let rows: Vec<Value> = (0..40)
        .map(|i| {
            json!({"learner_id": "P1", "event_id": format!("p-{i}"),
            "ts": format!("2026-02-{:02}T10:00:00Z", 1 + i % 28), "event_type": "login"})
        })
        .collect();
    let (status, body) = http(
        b.addr,
        "POST",
        "/v1/events",
        &[JSON, AUTH],
        &Value::Array(rows.clone()).to_string(),
    );
    assert_eq!(
        (status, json_of(&body)["accepted"].clone()),
        (200, json!(40)),
        "{body}"
    );
    // A retry that reaches the other server is all duplicates.
    let (_, body) = http(
        a.addr,
        "POST",
        "/v1/events",
        &[JSON, AUTH],
        &Value::Array(rows).to_string(),
    );
    assert_eq!(
        json_of(&body)["duplicates"].as_array().map(Vec::len),
        Some(40),
        "{body}"
    );
    let ask = "/v1/learners/P1/prediction?as_of=2026-03-01T00:00:00Z";
    let (status_a, by_a) = http(a.addr, "GET", ask, &[], "");
    let (status_b, by_b) = http(b.addr, "GET", ask, &[], "");
    assert_eq!((status_a, status_b), (200, 200), "{by_a} {by_b}");
    assert_eq!(
        json_of(&by_a)["predictions"][0]["churn_probability"],
        json_of(&by_b)["predictions"][0]["churn_probability"]
    );
    let (status, _) = http(b.addr, "DELETE", "/v1/learners/P1", &[AUTH], "");
    assert_eq!(status, 200);
    let (status, _) = http(a.addr, "GET", "/v1/learners/P1", &[], "");
    assert_eq!(status, 404, "erased through one server, gone for the other");
}
