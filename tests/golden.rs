//! Golden files of the formats people and programs read: `ab.json`,
//! `monitor.json`, and the server's prediction- and feature-log lines, on the
//! committed sample and models. They were written by the build before the
//! binary's analysis code moved into the crates; a change that alters any of
//! them must be deliberate (`CHURN_BLESS=1 cargo test --release --test golden`
//! rewrites them, and the diff is reviewed).

mod common;

use std::path::{Path, PathBuf};

use common::{ServeProcess, churn, path_str, predict, raw_instances_in, read_json, text};
use serde_json::{Value, json};

const NOW: &str = "2026-07-01T00:00:00Z";

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn blessing() -> bool {
    std::env::var_os("CHURN_BLESS").is_some()
}

/// Compares `actual` with the golden file `name` (as JSON values, so floats
/// compare exactly and key order is free), or rewrites it when blessing.
fn check_json(name: &str, actual: &Value) {
    let path = golden(name);
    if blessing() {
        // A list is written one compact item per line, so a diff shows the
        // lines that changed; anything else pretty.
        let mut text = match actual.as_array() {
            Some(items) => {
                let lines: Vec<String> = items.iter().map(Value::to_string).collect();
                format!("[\n{}\n]", lines.join(",\n"))
            }
            None => serde_json::to_string_pretty(actual).expect("JSON"),
        };
        text.push('\n');
        std::fs::write(&path, text).expect("write golden");
        return;
    }
    let expected: Value = read_json(&path);
    if expected != *actual {
        let actual_path = std::env::temp_dir().join(format!("churn-actual-{name}"));
        let _ = std::fs::write(
            &actual_path,
            serde_json::to_string_pretty(actual).unwrap_or_default(),
        );
        panic!(
            "{name} differs from its golden file {} (this run's output: {})",
            path.display(),
            actual_path.display()
        );
    }
}

/// The log's lines as JSON, with what changes from run to run (the wall-clock
/// `time` and the `request_id`) set to fixed values.
fn normalised_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).expect("a JSON line");
            let map = value.as_object_mut().expect("an object");
            assert!(map.contains_key("time"), "{line}");
            map.insert("time".into(), json!("2026-06-01T00:00:00Z"));
            if map.contains_key("request_id") {
                map.insert("request_id".into(), json!("golden"));
            }
            value
        })
        .collect()
}

fn write_lines(path: &Path, lines: &[Value]) {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).expect("write log");
}

#[test]
fn ab_json_is_unchanged_on_the_sample() {
    let out = tempfile::tempdir().expect("tempdir");
    let result = churn(&[
        "--quiet",
        "ab",
        "--data",
        "data",
        "--out",
        path_str(out.path()),
        "--now",
        NOW,
        "--model",
        "churn-gbdt",
        "--models",
        "models",
        "--cost",
        "recall_coupon=5",
        "--cost",
        "proactive_contact=20",
        "--cuped",
        "logins_30d",
        "--resamples",
        "200",
    ]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    check_json("ab.json", &read_json(out.path().join("ab.json")));
}

#[test]
fn served_log_lines_and_monitor_json_are_unchanged_on_the_sample() {
    let out = tempfile::tempdir().expect("tempdir");
    let predictions = out.path().join("predictions.jsonl");
    let features = out.path().join("features.jsonl");
    let (_, courses, _keep) = raw_instances_in(Path::new("data"), NOW);
    {
        let server = ServeProcess::start(&[
            "--models",
            "models",
            "--champion",
            "churn-gbdt",
            "--challenger",
            "churn-logistic",
            "--challenger-share",
            "0.3",
            "--courses",
            path_str(&courses),
            "--prediction-log",
            path_str(&predictions),
            "--feature-log",
            path_str(&features),
            "--feature-log-share",
            "1",
        ]);
        for as_of in ["2026-05-15T00:00:00Z", "2026-06-01T00:00:00Z"] {
            let (instances, _, _dir) = raw_instances_in(Path::new("data"), as_of);
            for chunk in instances.chunks(100).take(2) {
                let (status, value) =
                    predict(server.addr, &json!({"instances": chunk, "top_k": 3}));
                assert_eq!(status, 200, "{value}");
            }
        }
        // The log is written by a background task: wait for every line.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::read_to_string(&predictions).map_or(0, |t| t.lines().count()) < 400
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let logged = normalised_lines(&predictions);
    let feature_lines = normalised_lines(&features);
    assert_eq!(logged.len(), 400);
    check_json("prediction_log.json", &Value::Array(logged.clone()));
    // The feature log's first 100 lines as a file; all of them reach the
    // monitor's input drift below.
    check_json(
        "feature_log.json",
        &Value::Array(feature_lines.iter().take(100).cloned().collect()),
    );

    let (log_in, features_in) = (out.path().join("in.jsonl"), out.path().join("fin.jsonl"));
    write_lines(&log_in, &logged);
    write_lines(&features_in, &feature_lines);
    let monitor = churn(&[
        "--quiet",
        "monitor",
        "--data",
        "data",
        "--now",
        NOW,
        "--every",
        "7d",
        "--models",
        "models",
        "--log",
        path_str(&log_in),
        "--features",
        path_str(&features_in),
        "--out",
        path_str(&out.path().join("monitor")),
    ]);
    assert!(monitor.status.success(), "{}", text(&monitor.stderr));
    check_json(
        "monitor.json",
        &read_json(out.path().join("monitor/monitor.json")),
    );
}
