//! `churn serve` over a real socket: the same answers as `churn predict`,
//! model swaps under load without a failed request, slow clients cut off,
//! the prediction log written without learner data.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use churn_core::{format_timestamp, parse_timestamp};
use churn_data::{LoadOptions, load_dir};
use churn_serve::{App, ServeConfig};
use serde_json::{Value, json};

mod common;
use common::{
    churn_bin, churn_predict_on_sample, compare_with_predict, http, path_str, predict,
    raw_instances_in, read_json, read_predictions,
};

/// A server on an ephemeral port, stopped when dropped.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(config: ServeConfig) -> Server {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let app = App::build(config).expect("server starts");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send");
                app.serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("listening");
        Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Raw instances (profile + events up to `as_of`) of the sample's learners.
fn raw_instances(as_of: &str) -> (Vec<Value>, PathBuf, tempfile::TempDir) {
    raw_instances_in(Path::new("data"), as_of)
}

/// Raw instances of the learners still active at `as_of` (not gone or cancelled).
fn active_instances(as_of: &str) -> Vec<Value> {
    active_instances_in(Path::new("data"), as_of)
}

/// Raw instances of the learners of `data` still active at `as_of`.
fn active_instances_in(data: &Path, as_of: &str) -> Vec<Value> {
    let now = parse_timestamp("2026-12-31T00:00:00Z").expect("time");
    let mut dataset = load_dir(data, &LoadOptions { now })
        .expect("data loads")
        .dataset;
    let t = parse_timestamp(as_of).expect("as_of");
    dataset.events.sort_by_key(|e| (e.learner, e.ts));
    let active: std::collections::HashSet<String> = dataset
        .learners
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            let from = dataset
                .events
                .partition_point(|e| (e.learner as usize) < *i);
            let to = dataset
                .events
                .partition_point(|e| (e.learner as usize) <= *i);
            churn_features::label::not_eligible(
                churn_core::LabelDefinition::Either,
                l.signup_at,
                &dataset.events[from..to],
                t,
                30 * churn_core::DAY_MS,
            )
            .is_none()
        })
        .map(|(_, l)| l.id.clone())
        .collect();
    raw_instances_in(data, as_of)
        .0
        .into_iter()
        .filter(|i| active.contains(i["learner_id"].as_str().unwrap_or("")))
        .collect()
}

fn config(models: &Path) -> ServeConfig {
    ServeConfig {
        models: models.to_owned(),
        ..ServeConfig::default()
    }
}

#[test]
fn predictions_over_http_equal_churn_predict() {
    let as_of = "2026-05-01T00:00:00Z";
    let out = tempfile::tempdir().expect("tempdir");
    let csv_path = churn_predict_on_sample(as_of, out.path(), &[]);
    let expected = read_predictions(&csv_path);

    let (instances, courses, _dir) = raw_instances(as_of);
    // The model card's catalogue (the courses it was trained with) is enough …
    let server = Server::start(config(Path::new("models")));
    compare_with_predict(server.addr, &instances, &expected);
    // … and a catalogue file does the same.
    let mut with_file = config(Path::new("models"));
    with_file.courses = Some(courses);
    let server = Server::start(with_file);
    compare_with_predict(server.addr, &instances, &expected);
}

#[test]
fn an_exported_experiment_policy_suggests_the_same_actions_over_http_as_in_batch() {
    let as_of = "2026-05-01T00:00:00Z";
    let out = tempfile::tempdir().expect("tempdir");
    let policy = out.path().join("policy");
    let status = Command::new(churn_bin())
        .args([
            "--quiet",
            "ab",
            "--data",
            "data",
            "--now",
            "2026-07-01T00:00:00Z",
            "--model",
            "churn-gbdt",
        ])
        .arg("--out")
        .arg(out.path().join("ab"))
        .arg("--export-policy")
        .arg(&policy)
        .status()
        .expect("churn ab");
    assert!(status.success());
    let card: Value = read_json(policy.join("policy.json"));
    let id = format!(
        "{}@{}",
        card["name"].as_str().expect("name"),
        card["version"].as_str().expect("version")
    );
    let csv_path = churn_predict_on_sample(as_of, out.path(), &["--policy", path_str(&policy)]);
    let mut reader = csv::Reader::from_path(&csv_path).expect("csv");
    let headers = reader.headers().expect("headers").clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (policy_column, action_column) = (column("policy"), column("action"));
    let mut actions = std::collections::BTreeSet::new();
    let expected: std::collections::HashMap<String, (f64, String, String)> = reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            assert_eq!(
                &r[policy_column], id,
                "every action comes from the exported policy"
            );
            actions.insert(r[action_column].to_owned());
            (
                r[0].to_owned(),
                (
                    r[2].parse().expect("p"),
                    r[5].to_owned(),
                    r[action_column].to_owned(),
                ),
            )
        })
        .collect();
    // The policy targets: some learners are treated, others not.
    assert!(
        actions.contains("none") && actions.len() >= 2,
        "{actions:?}"
    );
    let mut with_policy = config(Path::new("models"));
    with_policy.policy = Some(policy.clone());
    let server = Server::start(with_policy);
    let (instances, _courses, _dir) = raw_instances(as_of);
    compare_with_predict(server.addr, &instances, &expected);
    let (status, value) = predict(server.addr, &json!({"instances": [features_instance("x")]}));
    assert_eq!(status, 200, "{value}");
    assert_eq!(
        value["predictions"][0]["suggested_action"]["policy"],
        id.as_str()
    );
}

#[test]
fn the_prediction_log_of_an_exploring_server_reads_back_as_an_experiment() {
    let as_of = "2026-05-16T00:00:00Z";
    let out = tempfile::tempdir().expect("tempdir");
    let log = out.path().join("log/predictions.jsonl");
    let mut exploring = config(Path::new("models"));
    exploring.epsilon = 0.5;
    exploring.prediction_log = Some(log.clone());
    let mut server = Server::start(exploring);
    let (instances, _courses, _dir) = raw_instances(as_of);
    for chunk in instances.chunks(200) {
        let (status, value) = predict(server.addr, &json!({"instances": chunk}));
        assert_eq!(status, 200, "{value}");
    }
    // A learner asked about twice: the first answer is the assignment.
    let (status, _) = predict(server.addr, &json!({"instances": [&instances[0]]}));
    assert_eq!(status, 200);
    server.stop();
    let mut text = std::fs::read_to_string(&log).expect("log");
    let logged = text.lines().count();
    assert_eq!(logged, instances.len() + 1);
    text.push_str("not json\n");
    text.push_str(
        &text
            .lines()
            .next()
            .expect("a line")
            .replace(instances[0]["learner_id"].as_str().expect("id"), "nobody"),
    );
    text.push('\n');
    std::fs::write(&log, text).expect("write log");

    let result = Command::new(churn_bin())
        .args([
            "--quiet",
            "ab",
            "--data",
            "data",
            "--now",
            "2026-07-01T00:00:00Z",
            "--no-uplift",
        ])
        .arg("--out")
        .arg(out.path().join("ab"))
        .arg("--prediction-log")
        .arg(&log)
        .output()
        .expect("churn ab");
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    // Every line is accounted for.
    let expected = format!(
        "prediction log: {} lines = {} assignments + 1 repeat predictions + 2 rejected",
        logged + 2,
        instances.len()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    let rejects =
        std::fs::read_to_string(out.path().join("ab/rejects/prediction_log.csv")).expect("rejects");
    assert_eq!(rejects.lines().count(), 1 + 3, "{rejects}");
    assert!(
        rejects.contains("unknown learner") && rejects.contains("not JSON"),
        "{rejects}"
    );
    let ab: Value = read_json(out.path().join("ab/ab.json"));
    let excluded = ab["excluded"]["already_gone"].as_u64().expect("gone")
        + ab["excluded"]["horizon_past_data"].as_u64().expect("past");
    assert_eq!(ab["assigned"].as_u64(), Some(instances.len() as u64));
    assert_eq!(
        ab["analysed"].as_u64().expect("analysed") + excluded,
        instances.len() as u64
    );
    // Exploration put learners in every arm with logged propensities; the
    // sample-ratio check weighs by them and finds the log consistent.
    assert!(
        ab["experiment"]
            .as_str()
            .expect("id")
            .contains("+explore(0.5)"),
        "{}",
        ab["experiment"]
    );
    assert!(ab["propensities_vary"].as_bool().expect("flag"));
    let srm = &ab["readout"]["sample_ratio"];
    assert!(
        srm["method"]
            .as_str()
            .expect("method")
            .starts_with("Horvitz"),
        "{srm}"
    );
    assert_eq!(srm["mismatch"], false, "{srm}");
    let arms: Vec<&str> = ab["readout"]["arms"]
        .as_array()
        .expect("arms")
        .iter()
        .map(|a| a["arm"].as_str().expect("arm"))
        .collect();
    assert_eq!(arms[0], "control");
    assert!(arms.len() >= 4, "{arms:?}");
}

#[test]
fn monitoring_a_served_log_gives_what_churn_evaluate_gives_on_the_same_rows() {
    let out = tempfile::tempdir().expect("tempdir");
    let log = out.path().join("log/predictions.jsonl");
    let features_log = out.path().join("log/features.jsonl");
    let mut logging = config(Path::new("models"));
    logging.prediction_log = Some(log.clone());
    logging.feature_log = Some(features_log.clone());
    logging.feature_log_share = 1.0;
    let mut server = Server::start(logging);
    let times = [
        "2026-05-15T00:00:00Z",
        "2026-05-22T00:00:00Z",
        "2026-05-29T00:00:00Z",
    ];
    let mut sent = 0;
    for as_of in times {
        // The learners still active, as an application would ask about.
        let instances = active_instances(as_of);
        for chunk in instances.chunks(200) {
            let (status, value) = predict(server.addr, &json!({"instances": chunk}));
            assert_eq!(status, 200, "{value}");
        }
        sent += instances.len();
    }
    // The same drift, live, for an alert: PSI over the latest served rows.
    let (status, metrics) = http(server.addr, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    let gauge = |name: &str| -> Vec<f64> {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect()
    };
    let features = gauge("churn_feature_psi{");
    let registry = churn_features::NUMERIC.len() + churn_features::CATEGORICAL.len();
    assert_eq!(
        features.len(),
        registry,
        "one gauge per feature:\n{metrics}"
    );
    assert!(
        features.iter().all(|v| v.is_finite() && *v < 0.25),
        "{features:?}"
    );
    let prediction = gauge("churn_prediction_psi{");
    assert!(
        prediction.len() == 1 && prediction[0] < 0.1,
        "{prediction:?}"
    );
    // One prediction in four enters the window, up to 2,000 rows.
    let rows = gauge("churn_drift_window_rows{");
    assert!(
        rows.len() == 1 && rows[0] > 1000.0 && rows[0] <= 2000.0,
        "{rows:?}"
    );
    server.stop();
    let monitor = |extra: &[&str]| {
        Command::new(churn_bin())
            .args([
                "--quiet",
                "monitor",
                "--data",
                "data",
                "--now",
                "2026-07-01T00:00:00Z",
                "--every",
                "7d",
            ])
            .arg("--log")
            .arg(&log)
            .arg("--features")
            .arg(&features_log)
            .arg("--out")
            .arg(out.path().join("monitor"))
            .args(extra)
            .output()
            .expect("churn monitor")
    };
    let result = monitor(&[]);
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "prediction log: {sent} lines = {sent} read + 0 rejected"
        )),
        "{stdout}"
    );
    let report: Value = read_json(out.path().join("monitor/monitor.json"));
    let periods = report["periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 3, "one period per as-of time: {stdout}");
    // Each period's realised metrics are churn evaluate's at that as-of time
    // (served probabilities equal batch ones within 5e-7, hence 1e-5).
    for (period, as_of) in periods.iter().zip(times) {
        let model = &period["models"][0];
        let evaluated = Command::new(churn_bin())
            .args([
                "--quiet",
                "evaluate",
                "--model",
                "churn-gbdt",
                "--data",
                "data",
                "--now",
                "2026-07-01T00:00:00Z",
            ])
            .args(["--from", as_of, "--to", as_of])
            .arg("--work")
            .arg(out.path().join("evaluate"))
            .output()
            .expect("churn evaluate");
        assert!(evaluated.status.success());
        let text = String::from_utf8_lossy(&evaluated.stdout).into_owned();
        let json: Value =
            serde_json::from_str(&text[text.find('{').expect("JSON")..]).expect("evaluate JSON");
        let (ours, theirs) = (&model["metrics"], &json["overall"]);
        assert_eq!(ours["rows"], theirs["rows"], "{as_of}: labelled rows");
        for key in ["churn_rate", "average_precision", "brier", "ece"] {
            let (a, b) = (
                ours[key].as_f64().expect(key),
                theirs[key].as_f64().expect(key),
            );
            assert!(
                (a - b).abs() < 1e-5,
                "{as_of} {key}: monitor {a}, evaluate {b}"
            );
        }
        let (a, b) = (
            ours["roc_auc"]["estimate"].as_f64().expect("auc"),
            theirs["roc_auc"]["estimate"].as_f64().expect("auc"),
        );
        assert!(
            (a - b).abs() < 1e-5,
            "{as_of} AUC: monitor {a}, evaluate {b}"
        );
        let predictions = model["predictions"].as_u64().expect("n");
        let accounted = ours["rows"].as_u64().expect("rows")
            + model["pending"].as_u64().expect("pending")
            + model["not_eligible"].as_u64().expect("gone");
        assert_eq!(
            predictions, accounted,
            "{as_of}: every prediction accounted for"
        );
    }
    // Unchanged data: the served population looks like the training rows.
    for period in periods {
        let psi = period["models"][0]["psi"].as_f64().expect("psi");
        assert!(psi < 0.1, "prediction PSI {psi} on unchanged data");
    }
    let drift = report["feature_drift"].as_array().expect("feature drift");
    assert_eq!(drift.len(), 3, "input drift per period");
    for d in drift {
        let top = &d["features"][0];
        assert!(
            top["psi"].as_f64().expect("psi") < 0.25,
            "{top} drifts on unchanged data"
        );
    }
    let served = std::fs::read_to_string(&features_log).expect("feature log");
    assert_eq!(served.lines().count(), sent, "share 1: every row logged");
    assert!(
        !served.contains("learner_id") && !served.contains("events"),
        "no learner data in the feature log"
    );
    // Thresholds gate a scheduled job.
    assert_eq!(
        monitor(&["--fail-on", "auc<0.5,psi>5,feature_psi>0.25"])
            .status
            .code(),
        Some(0)
    );
    let failing = monitor(&["--fail-on", "auc<0.9999"]);
    assert_eq!(failing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&failing.stderr).contains("FAIL: churn-gbdt@"));
    let bad = monitor(&["--fail-on", "recall<0.5"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown metric \"recall\""));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn features_instance(id: &str) -> Value {
    let mut features = serde_json::Map::new();
    for f in churn_features::NUMERIC {
        features.insert(f.name.into(), json!(1.0));
    }
    for f in churn_features::CATEGORICAL {
        features.insert(f.name.into(), Value::Null);
    }
    json!({"learner_id": id, "features": features})
}

#[test]
fn models_swap_under_load_without_a_failed_request() {
    let models = tempfile::tempdir().expect("tempdir");
    copy_dir(Path::new("models"), models.path());
    // A broken model: its model.bin truncated.
    let gbdt = churn_model::artifact::resolve("churn-gbdt", models.path()).expect("committed");
    let broken = models.path().join("churn-broken").join("v1");
    copy_dir(&gbdt, &broken);
    let bin = std::fs::read(broken.join("model.bin")).expect("model.bin");
    std::fs::write(broken.join("model.bin"), &bin[..bin.len() / 2]).expect("truncate");

    let token = "admin-token-for-the-reload-test";
    let mut config = config(models.path());
    config.admin_token = Some(token.into());
    let log = models.path().join("log/predictions.jsonl");
    config.prediction_log = Some(log.clone());
    let mut server = Server::start(config);
    let addr = server.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..2)
        .map(|c| {
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (status, value) = predict(
                        addr,
                        &json!({"instances": [features_instance(&format!("c{c}-{i}"))]}),
                    );
                    if status == 200 && value["predictions"][0]["churn_probability"].is_number() {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let auth = format!("Authorization: Bearer {token}");
    let reload = |champion: &str| {
        http(
            addr,
            "POST",
            "/v1/admin/reload",
            &["Content-Type: application/json", &auth],
            &json!({"champion": champion}).to_string(),
        )
    };
    for k in 0..20 {
        let champion = if k % 2 == 0 {
            "churn-logistic"
        } else {
            "churn-gbdt"
        };
        let (status, body) = reload(champion);
        assert_eq!(status, 200, "reload {k}: {body}");
        let (_, value) = predict(addr, &json!({"instances": [features_instance("probe")]}));
        assert_eq!(
            value["predictions"][0]["model"]["name"], champion,
            "swap {k} took effect"
        );
    }
    let (status, body) = reload("churn-broken");
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("reload_failed") && body.contains("model.bin"),
        "{body}"
    );
    let (status, value) = predict(addr, &json!({"instances": [features_instance("after")]}));
    assert_eq!(status, 200);
    assert_eq!(
        value["predictions"][0]["model"]["name"], "churn-gbdt",
        "the old model keeps serving"
    );

    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client");
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed during the swaps"
    );
    assert!(
        done.load(Ordering::Relaxed) > 20,
        "the clients kept sending"
    );
    let (_, metrics) = http(addr, "GET", "/metrics", &[], "");
    assert!(
        metrics.contains("churn_reloads_total{outcome=\"ok\"} 20"),
        "{metrics}"
    );
    assert!(metrics.contains("churn_reloads_total{outcome=\"refused\"} 1"));

    server.stop();
    let text = std::fs::read_to_string(&log).expect("prediction log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(lines.len() > 20);
    for line in &lines {
        for key in [
            "time",
            "request_id",
            "learner_id",
            "model",
            "churn_probability",
            "top_factors",
            "suggested_action",
        ] {
            assert!(line.get(key).is_some(), "log line lacks {key}: {line}");
        }
        assert!(
            line.get("features").is_none() && line.get("events").is_none(),
            "no learner data in the log"
        );
        assert!(line["suggested_action"]["propensity"].is_number());
    }
}

#[test]
fn a_slow_client_is_cut_off_while_others_are_served() {
    let mut config = config(Path::new("models"));
    config.header_timeout_ms = 300;
    let server = Server::start(config);
    let mut slow = TcpStream::connect(server.addr).expect("connect");
    slow.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n")
        .expect("partial headers");
    let (status, _) = predict(
        server.addr,
        &json!({"instances": [features_instance("L1")]}),
    );
    assert_eq!(status, 200, "others are served meanwhile");
    slow.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buffer = Vec::new();
    let started = std::time::Instant::now();
    let _ = slow.read_to_end(&mut buffer);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the server closed the slow connection"
    );
    let text = String::from_utf8_lossy(&buffer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    let (status, _) = http(server.addr, "GET", "/healthz", &[], "");
    assert_eq!(status, 200);
}

/// The value of an unlabelled counter in a `/metrics` answer.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

#[test]
fn a_client_that_stalls_in_its_body_gets_408_and_is_not_counted_as_load() {
    let mut config = config(Path::new("models"));
    config.body_timeout_ms = 300;
    // A request timeout shorter than the body's would have said 503 before.
    config.request_timeout_ms = 200;
    let server = Server::start(config);
    let mut stalled = TcpStream::connect(server.addr).expect("connect");
    stalled
        .write_all(
            b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"instances\": [",
        )
        .expect("headers and part of the body");
    let (status, _) = predict(
        server.addr,
        &json!({"instances": [features_instance("L1")]}),
    );
    assert_eq!(status, 200, "others are served meanwhile");
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buffer = Vec::new();
    let started = std::time::Instant::now();
    let _ = stalled.read_to_end(&mut buffer);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the server answered and closed the stalled connection"
    );
    let text = String::from_utf8_lossy(&buffer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    let (status, metrics) = http(server.addr, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    assert_eq!(counter(&metrics, "churn_slow_clients_total"), 1.0);
    assert_eq!(counter(&metrics, "churn_load_shed_total"), 0.0);
    assert_eq!(counter(&metrics, "churn_request_timeouts_total"), 0.0);
}

#[test]
fn a_new_version_in_the_models_directory_is_picked_up_by_the_watcher() {
    let models = tempfile::tempdir().expect("tempdir");
    copy_dir(Path::new("models"), models.path());
    let mut config = config(models.path());
    config.watch_seconds = 1;
    let server = Server::start(config);
    let version = |addr| {
        let (_, value) = predict(addr, &json!({"instances": [features_instance("w")]}));
        value["predictions"][0]["model"]["version"]
            .as_str()
            .expect("version")
            .to_owned()
    };
    let before = version(server.addr);
    // A newer version: the same artifact under a later directory name, with its card saying so.
    let current = churn_model::artifact::resolve("churn-gbdt", models.path()).expect("committed");
    let newer = models
        .path()
        .join("churn-gbdt")
        .join("29990101T000000Z-000000");
    copy_dir(&current, &newer);
    let card = std::fs::read_to_string(newer.join("model.json")).expect("card");
    std::fs::write(
        newer.join("model.json"),
        card.replace(&before, "29990101T000000Z-000000"),
    )
    .expect("card");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while version(server.addr) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not reload"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(version(server.addr), "29990101T000000Z-000000");
}

#[test]
fn shutdown_lets_the_request_in_flight_finish() {
    let mut config = config(Path::new("models"));
    config.max_batch = 20_000;
    config.max_body_bytes = 64 << 20;
    let mut server = Server::start(config);
    let instances: Vec<Value> = (0..20_000)
        .map(|i| features_instance(&format!("L{i}")))
        .collect();
    let body = json!({"instances": instances}).to_string();
    let addr = server.addr;
    let started = std::time::Instant::now();
    let client = std::thread::spawn(move || {
        http(
            addr,
            "POST",
            "/v1/predict",
            &["Content-Type: application/json"],
            &body,
        )
    });
    // The request is on the wire and being scored (it takes far longer than this).
    std::thread::sleep(Duration::from_millis(150));
    server.stop();
    let (status, text) = client.join().expect("client");
    assert_eq!(status, 200, "the in-flight request was answered, not cut");
    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(value["predictions"].as_array().map(Vec::len), Some(20_000));
    assert!(started.elapsed() > Duration::from_millis(150));
    assert!(TcpStream::connect(addr).is_err(), "no longer accepting");
}

/// Simulates a platform (with a change of behaviour at day 150, 2026-05-31,
/// or none), trains on what was known then, serves it weekly with both logs, and
/// returns `churn monitor`'s report.
fn monitor_scenario(drift: bool) -> (Value, Option<i32>) {
    let out = tempfile::tempdir().expect("tempdir");
    let data = out.path().join("data");
    let mut simulate = Command::new(churn_bin());
    simulate.args([
        "--quiet",
        "simulate",
        "--learners",
        "3000",
        "--days",
        "240",
        "--seed",
        "5",
    ]);
    if drift {
        simulate.args(["--drift-day", "150"]);
    }
    assert!(
        simulate
            .arg("--out")
            .arg(&data)
            .status()
            .expect("simulate")
            .success()
    );
    let models = out.path().join("models");
    let trained = Command::new(churn_bin())
        .args([
            "--quiet",
            "train",
            "--kind",
            "gbdt",
            "--name",
            "scenario",
            "--data-end",
            "2026-05-31",
            "--every",
            "7d",
            "--now",
            "2026-12-31T00:00:00Z",
            // The AUC before the change is compared with the AUC after it, so
            // the weeks before must be out of sample: a refitted model learned
            // from them (it would look better there than anywhere later).
            "--no-refit",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&models)
        .arg("--work")
        .arg(out.path().join("train"))
        .status()
        .expect("train");
    assert!(trained.success());
    let (log, features) = (
        out.path().join("predictions.jsonl"),
        out.path().join("features.jsonl"),
    );
    let mut serving = config(&models);
    serving.champion = "scenario".into();
    serving.prediction_log = Some(log.clone());
    serving.feature_log = Some(features.clone());
    serving.feature_log_share = 1.0;
    serving.max_events = 1_000_000;
    serving.max_body_bytes = 512 << 20;
    let mut server = Server::start(serving);
    let start = parse_timestamp("2026-04-12T00:00:00Z").expect("time");
    for week in 0..16 {
        let as_of = format_timestamp(start + week * 7 * churn_core::DAY_MS);
        let instances = active_instances_in(&data, &as_of);
        for chunk in instances.chunks(200) {
            let (status, value) = predict(server.addr, &json!({"instances": chunk}));
            assert_eq!(status, 200, "{value}");
        }
    }
    server.stop();
    // `churn monitor` of this scenario's log, writing to `out/<name>`.
    let monitor = |name: &str| {
        let mut command = Command::new(churn_bin());
        command
            .args([
                "--quiet",
                "monitor",
                "--every",
                "7d",
                "--now",
                "2026-12-31T00:00:00Z",
            ])
            .arg("--data")
            .arg(&data)
            .arg("--log")
            .arg(&log)
            .arg("--features")
            .arg(&features)
            .arg("--models")
            .arg(&models)
            .arg("--out")
            .arg(out.path().join(name));
        command
    };
    let result = monitor("monitor").output().expect("monitor");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    // CHURN_KEEP_MONITOR=DIR keeps the report to look at.
    if let Some(keep) = std::env::var_os("CHURN_KEEP_MONITOR") {
        let keep = Path::new(&keep).join(if drift { "changed" } else { "unchanged" });
        copy_dir(&out.path().join("monitor"), &keep);
    }
    // The gate a scheduled job would run: any feature past PSI 0.25, tenure aside.
    let gate = monitor("gate")
        .args([
            "--fail-on",
            "feature_psi>0.25",
            "--gate-ignores",
            "tenure_days",
        ])
        .status()
        .expect("monitor gate");
    let report: Value = read_json(out.path().join("monitor/monitor.json"));
    (report, gate.code())
}

#[test]
fn the_monitor_flags_a_changed_platform_in_the_right_period_and_stays_quiet_otherwise() {
    let (changed, changed_gate) = monitor_scenario(true);
    let (unchanged, unchanged_gate) = monitor_scenario(false);
    // The scheduled job's gate fails on the change and passes without it.
    assert_eq!(changed_gate, Some(3));
    assert_eq!(unchanged_gate, Some(0));
    let drift_day = parse_timestamp("2026-05-31T00:00:00Z").expect("time");
    let psi = |report: &Value, feature: &str| -> Vec<(i64, f64)> {
        report["feature_drift"]
            .as_array()
            .expect("drift")
            .iter()
            .map(|d| {
                let f = d["features"]
                    .as_array()
                    .expect("features")
                    .iter()
                    .find(|f| f["feature"] == feature)
                    .expect("feature");
                (
                    d["start"].as_i64().expect("start"),
                    f["psi"].as_f64().expect("psi"),
                )
            })
            .collect()
    };
    // Worse live classes: the latency features drift from the period after
    // the change and lead the list two weeks in; never before, never without it.
    for feature in ["live_mean_latency_ms_30d", "live_stalls_per_class_30d"] {
        for (start, value) in psi(&changed, feature) {
            if start < drift_day {
                assert!(
                    value < 0.1,
                    "{feature} drifts ({value}) before the change, period {start}"
                );
            } else if start >= drift_day + 14 * churn_core::DAY_MS {
                assert!(
                    value > 0.25,
                    "{feature} PSI {value} two weeks after the change, period {start}"
                );
            }
        }
        for (start, value) in psi(&unchanged, feature) {
            assert!(
                value < 0.1,
                "{feature} drifts ({value}) without a change, period {start}"
            );
        }
    }
    let later = changed["feature_drift"]
        .as_array()
        .expect("drift")
        .last()
        .expect("a period")
        .clone();
    let leaders: Vec<&str> = later["features"].as_array().expect("f")[..2]
        .iter()
        .map(|f| f["feature"].as_str().unwrap_or(""))
        .collect();
    assert!(leaders.contains(&"live_mean_latency_ms_30d"), "{leaders:?}");
    // The new cohort's channels show as it grows.
    let channel = psi(&changed, "acquisition_channel");
    assert!(channel.last().expect("a period").1 > 0.1, "{channel:?}");
    assert!(
        psi(&unchanged, "acquisition_channel")
            .iter()
            .all(|(_, v)| *v < 0.05)
    );
    // The model trained before the change ranks worse after it.
    let auc = |report: &Value, from: i64, to: i64| -> f64 {
        let values: Vec<f64> = report["periods"]
            .as_array()
            .expect("periods")
            .iter()
            .filter(|p| (from..to).contains(&p["start"].as_i64().unwrap_or(0)))
            .filter_map(|p| p["models"][0]["metrics"]["roc_auc"]["estimate"].as_f64())
            .collect();
        values.iter().sum::<f64>() / values.len() as f64
    };
    let week = 7 * churn_core::DAY_MS;
    let (before, after) = (
        (drift_day - 7 * week, drift_day),
        (drift_day + week, drift_day + 6 * week),
    );
    let changed_drop = auc(&changed, before.0, before.1) - auc(&changed, after.0, after.1);
    let unchanged_drop = auc(&unchanged, before.0, before.1) - auc(&unchanged, after.0, after.1);
    assert!(
        changed_drop > 0.025,
        "AUC drop after the change: {changed_drop}"
    );
    assert!(
        unchanged_drop < 0.02,
        "AUC drop without a change: {unchanged_drop}"
    );
}
