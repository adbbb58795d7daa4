//! What the end-to-end tests of the binary and the server share: plain HTTP
//! over a socket and learners of a data directory as raw `/v1/predict`
//! instances.
#![allow(dead_code)] // each test crate uses its own part of this module

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use churn_core::parse_timestamp;
use churn_data::{LoadOptions, load_dir};
use serde_json::{Value, json};

/// One HTTP/1.1 request on its own connection: (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    )
}

/// Undoes chunked transfer encoding.
pub fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn predict(addr: SocketAddr, body: &Value) -> (u16, Value) {
    let (status, text) = http(
        addr,
        "POST",
        "/v1/predict",
        &["Content-Type: application/json"],
        &body.to_string(),
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(json!({"raw": text})),
    )
}

pub fn churn_bin() -> &'static str {
    env!("CARGO_BIN_EXE_churn")
}

/// Raw instances (profile + events up to `as_of`) of the learners of the data
/// directory `data` who had signed up by then, and a `courses.csv` of its
/// catalogue (in the returned temporary directory).
pub fn raw_instances_in(data: &Path, as_of: &str) -> (Vec<Value>, PathBuf, tempfile::TempDir) {
    let now = parse_timestamp("2026-12-31T00:00:00Z").expect("time");
    let dataset = load_dir(data, &LoadOptions { now })
        .expect("data loads")
        .dataset;
    let t = parse_timestamp(as_of).expect("as_of");
    let dir = tempfile::tempdir().expect("tempdir");
    let courses = dir.path().join("courses.csv");
    let mut csv = String::from("course_id,lessons\n");
    for c in &dataset.courses {
        csv.push_str(&format!("{},{}\n", c.id, c.lessons));
    }
    std::fs::write(&courses, csv).expect("courses.csv");
    let mut events: Vec<Vec<&churn_core::Event>> = vec![Vec::new(); dataset.learners.len()];
    for e in dataset.events.iter().filter(|e| e.ts <= t) {
        events[e.learner as usize].push(e);
    }
    let instances = dataset
        .learners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.signup_at <= t)
        .map(|(i, _)| {
            events[i].sort_by_key(|e| e.ts);
            churn_serve::raw_instance(&dataset, i, &events[i], t).expect("a learner of the dataset")
        })
        .collect();
    (instances, courses, dir)
}

/// `churn predict`'s CSV as learner id → (probability, first factor, action).
pub fn read_predictions(path: &Path) -> HashMap<String, (f64, String, String)> {
    let mut reader = csv::Reader::from_path(path).expect("predictions csv");
    let headers = reader.headers().expect("header").clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (id, p, factor, action) = (
        column("learner_id"),
        column("churn_probability"),
        column("factor_1_feature"),
        column("action"),
    );
    reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            (
                r[id].to_owned(),
                (
                    r[p].parse().expect("p"),
                    r[factor].to_owned(),
                    r[action].to_owned(),
                ),
            )
        })
        .collect()
}

/// Sends `instances` to the server at `addr` in batches of 200 and checks that
/// every learner of `expected` (read by [`read_predictions`]) gets the same
/// probability, first factor and action.
pub fn compare_with_predict(
    addr: SocketAddr,
    instances: &[Value],
    expected: &HashMap<String, (f64, String, String)>,
) {
    let mut compared = 0;
    for chunk in instances.chunks(200) {
        let (status, value) = predict(addr, &json!({"instances": chunk, "top_k": 3}));
        assert_eq!(status, 200, "{value}");
        for p in value["predictions"].as_array().expect("predictions") {
            let id = p["learner_id"].as_str().expect("id");
            // churn predict scores active learners only; the server scores whoever it is asked about.
            let Some((probability, factor, action)) = expected.get(id) else {
                continue;
            };
            let ours = p["churn_probability"].as_f64().expect("p");
            assert!(
                (ours - probability).abs() <= 5e-7,
                "{id}: {ours} vs {probability}"
            );
            assert_eq!(
                p["top_factors"][0]["feature"].as_str().unwrap_or(""),
                factor,
                "{id}"
            );
            assert_eq!(
                p["suggested_action"]["action"].as_str().expect("action"),
                action,
                "{id}"
            );
            compared += 1;
        }
    }
    assert_eq!(
        compared,
        expected.len(),
        "every learner of predictions.csv compared"
    );
}

/// `churn predict` of the committed model on the sample at `as_of`, with
/// `extra` flags, into `out/predictions.csv` (returned).
pub fn churn_predict_on_sample(as_of: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let csv_path = out.join("predictions.csv");
    let status = Command::new(churn_bin())
        .args([
            "--quiet",
            "predict",
            "--model",
            "churn-gbdt",
            "--data",
            "data",
            "--as-of",
            as_of,
            "--now",
            "2026-07-01T00:00:00Z",
        ])
        .arg("--out")
        .arg(&csv_path)
        .arg("--work")
        .arg(out.join("work"))
        .args(extra)
        .status()
        .expect("churn predict");
    assert!(status.success());
    csv_path
}

/// Runs the built `churn` binary in the repository root.
pub fn churn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_churn"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run churn")
}

/// A JSON file, read and parsed; a failure names the file.
pub fn read_json(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// `churn serve` as a child process, killed when dropped.
pub struct ServeProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl ServeProcess {
    /// Starts `churn serve` on an ephemeral port and waits for its
    /// "listening on http://ADDR" line.
    pub fn start(args: &[&str]) -> ServeProcess {
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

impl ServeProcess {
    /// Stops the server as an operator would (SIGTERM: in-flight requests
    /// finish, the logs are flushed) and waits for it.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Kills the server at once (SIGKILL: no shutdown, no flush).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every arm of `churn ab`'s `ab.json` has the learners and churners the
/// simulator's `truth.json` drew.
pub fn assert_arms_as_drawn(ab: &Value, truth: &Value) {
    let arms = ab["readout"]["arms"].as_array().expect("arms");
    for t in truth["experiment"]["arms"].as_array().expect("truth arms") {
        let ours = arms
            .iter()
            .find(|a| a["arm"] == t["arm"])
            .unwrap_or_else(|| panic!("arm {} missing", t["arm"]));
        assert_eq!(ours["n"], t["n"], "{}", t["arm"]);
        assert_eq!(ours["churned"], t["churned"], "{}", t["arm"]);
    }
}
