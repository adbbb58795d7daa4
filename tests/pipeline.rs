//! The whole pipeline as a user runs it, on a freshly simulated platform:
//! simulate → validate → features → train → predict → `churn serve` as its own
//! process on a real socket → the HTTP answers equal the batch predictions →
//! the experiment read back by `churn ab` as the simulator drew it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

mod common;
use common::{
    churn, churn_bin, compare_with_predict, http, path_str, raw_instances_in, read_predictions,
    text,
};

/// `churn serve` as a child process, killed when dropped.
struct ServeProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServeProcess {
    /// Starts `churn serve` on an ephemeral port and waits for its
    /// "listening on http://ADDR" line.
    fn start(args: &[&str]) -> ServeProcess {
        let mut child = Command::new(churn_bin())
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("churn serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => {
                    let _ = child.kill();
                    panic!("churn serve exited before listening");
                }
            };
            if let Some(rest) = line.strip_prefix("listening on http://") {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                break addr.parse().expect("address");
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServeProcess { child, addr }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str]) -> String {
    let result = churn(args);
    assert!(
        result.status.success(),
        "churn {}: {}",
        args.join(" "),
        text(&result.stderr)
    );
    text(&result.stdout)
}

fn json_file(path: &Path) -> Value {
    let body = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&body).expect("JSON")
}

#[test]
fn simulate_validate_features_train_predict_serve_and_read_the_experiment() {
    let work = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| work.path().join(name);
    let (sim, models) = (at("sim"), at("models"));
    let now = ["--now", "2026-12-31T00:00:00Z"];

    run(&[
        "--quiet",
        "simulate",
        "--learners",
        "3000",
        "--days",
        "180",
        "--seed",
        "11",
        "--out",
        path_str(&sim),
    ]);
    let truth = json_file(&sim.join("truth.json"));

    // The simulator writes only rows the contract accepts.
    let validate = at("validate");
    run(&[
        "--quiet",
        "validate",
        "--data",
        path_str(&sim),
        "--out",
        path_str(&validate),
        "--strict",
        now[0],
        now[1],
    ]);
    let validation = json_file(&validate.join("validation.json"));
    assert_eq!(validation["total_rejected"], 0, "{validation}");

    let table = at("features/table.parquet");
    run(&[
        "--quiet",
        "features",
        "--data",
        path_str(&sim),
        "--out",
        path_str(&table),
        now[0],
        now[1],
    ]);
    assert!(table.is_file());

    run(&[
        "--quiet",
        "train",
        "--data",
        path_str(&sim),
        "--kind",
        "both",
        "--name",
        "churn",
        "--out",
        path_str(&models),
        "--work",
        path_str(&at("train")),
        "--seed",
        "42",
    ]);
    for kind in ["gbdt", "logistic"] {
        let versions: Vec<_> = std::fs::read_dir(models.join(format!("churn-{kind}")))
            .expect("model directory")
            .collect();
        assert_eq!(versions.len(), 1, "one version of churn-{kind}");
        let dir = versions[0].as_ref().expect("entry").path();
        let card = json_file(&dir.join("model.json"));
        // The simulator's drivers are learnable: far better than chance out of time.
        let auc = card["metrics"]["test"]["roc_auc"]["estimate"]
            .as_f64()
            .expect("test AUC");
        assert!(auc > 0.8, "churn-{kind} test AUC {auc}");
        assert!(dir.join("report.html").is_file(), "report of churn-{kind}");
    }

    // Batch scores of the learners active at the as-of time …
    let as_of = "2026-05-01T00:00:00Z";
    let predictions = at("predictions.csv");
    run(&[
        "--quiet",
        "predict",
        "--model",
        "churn-gbdt",
        "--models",
        path_str(&models),
        "--data",
        path_str(&sim),
        "--as-of",
        as_of,
        "--out",
        path_str(&predictions),
        "--work",
        path_str(&at("predict")),
        now[0],
        now[1],
    ]);
    let expected = read_predictions(&predictions);
    assert!(expected.len() > 500, "{} active learners", expected.len());

    // … equal the answers of the server, raw events in, over a real socket.
    let server = ServeProcess::start(&["--models", path_str(&models)]);
    let (status, body) = http(server.addr, "GET", "/readyz", &[], "");
    assert_eq!(status, 200, "{body}");
    let (instances, _, _dir) = raw_instances_in(&sim, as_of);
    compare_with_predict(server.addr, &instances, &expected);
    let (status, metrics) = http(server.addr, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("churn_predictions_total{band="),
        "{metrics}"
    );
    drop(server);

    // The experiment reads back exactly as the simulator drew it.
    let ab = at("ab");
    let readout = run(&[
        "--quiet",
        "ab",
        "--data",
        path_str(&sim),
        "--model",
        "churn-gbdt",
        "--models",
        path_str(&models),
        "--resamples",
        "200",
        "--out",
        path_str(&ab),
        now[0],
        now[1],
    ]);
    assert!(readout.contains("recommended"), "{readout}");
    let ab_json = json_file(&ab.join("ab.json"));
    let arms = ab_json["readout"]["arms"].as_array().expect("arms");
    for t in truth["experiment"]["arms"].as_array().expect("truth arms") {
        let ours = arms
            .iter()
            .find(|a| a["arm"] == t["arm"])
            .unwrap_or_else(|| panic!("arm {} missing", t["arm"]));
        assert_eq!(ours["n"], t["n"], "{}", t["arm"]);
        assert_eq!(ours["churned"], t["churned"], "{}", t["arm"]);
    }
    assert!(ab.join("ab.html").is_file());
}
