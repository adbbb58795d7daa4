//! The whole pipeline as a user runs it, on a freshly simulated platform:
//! simulate → validate → features → train → predict → `churn serve` as its own
//! process on a real socket → the HTTP answers equal the batch predictions →
//! the experiment read back by `churn ab` as the simulator drew it. And the
//! README's first command, run as written in a fresh copy of the repository.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::{
    ServeProcess, assert_arms_as_drawn, churn, churn_bin, compare_with_predict, http, path_str,
    predict, raw_instances_in, read_predictions, text,
};

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
    assert_arms_as_drawn(&ab_json, &truth);
    assert!(ab.join("ab.html").is_file());
}

/// `sim` rewritten as a platform with its own vocabulary would export it: a
/// fifth of the learners on a "Pro" plan with a "tablet"; logins as weekly
/// counts; a custom `video_play` (activity, says `contract.toml`) 36 hours
/// after every video watch (so that reading it as activity or not moves
/// `days_since_last_activity`) and a custom `badge_earned` (a signal) after every quiz; the
/// inactivity label.
fn own_vocabulary_copy(sim: &Path, out: &Path) {
    use churn_core::{DAY_MS, Event, EventKind, EventType};
    let now = churn_core::parse_timestamp("2026-12-31T00:00:00Z").expect("time");
    let mut dataset = churn_data::load_dir(sim, &churn_data::LoadOptions { now })
        .expect("loads")
        .dataset;
    // Learner attributes of the platform's own: a number and a category,
    // each missing for some learners.
    dataset.attributes = churn_core::LearnerAttributes {
        numeric: vec!["weekly_hours".into()],
        categorical: vec!["company_size".into()],
    };
    for (i, learner) in dataset.learners.iter_mut().enumerate() {
        if i % 5 == 0 {
            learner.plan = "Pro".into();
            learner.device = Some("tablet".into());
        }
        learner.numeric_attributes = vec![if i % 9 == 0 {
            f64::NAN
        } else {
            (i % 10) as f64
        }];
        learner.categorical_attributes =
            vec![(i % 7 != 0).then(|| ["small", "large"][i % 2].to_owned())];
    }
    dataset
        .events
        .sort_by(|a, b| a.learner.cmp(&b.learner).then(a.canonical_cmp(b)));
    dataset.custom_event_types = vec!["badge_earned".into(), "video_play".into()];
    let mut events: Vec<Event> = Vec::with_capacity(dataset.events.len() * 2);
    let mut open_login: Option<(u32, i64, usize)> = None;
    for e in &dataset.events {
        let week = e.ts.div_euclid(7 * DAY_MS);
        if e.event_type == EventType::Login {
            match open_login {
                Some((learner, w, row)) if learner == e.learner && w == week => {
                    events[row].count += 1;
                    continue;
                }
                _ => open_login = Some((e.learner, week, events.len())),
            }
        }
        events.push(*e);
        let custom = |index, activity| EventKind::Custom { index, activity };
        if e.event_type == EventType::VideoWatch {
            events.push(Event::new(
                e.ts + 36 * 3_600_000,
                e.learner,
                custom(1, true),
            ));
        }
        if e.event_type == EventType::QuizAttempt {
            events.push(Event::new(e.ts, e.learner, custom(0, false)));
        }
    }
    assert!(events.iter().any(|e| e.count > 1));
    dataset.events = events;
    churn_data::write_dataset(&dataset, out, churn_data::Format::Csv).expect("written");
    std::fs::write(
        out.join("contract.toml"),
        "label = \"inactivity\"\n[events]\nactivity = [\"video_play\"]\n[learners]\nnumeric = [\"weekly_hours\"]\ncategorical = [\"company_size\"]\n",
    )
    .expect("contract.toml");
}

#[test]
fn a_platform_with_its_own_vocabulary_trains_predicts_explains_and_serves() {
    let work = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| work.path().join(name);
    let (sim, own, models) = (at("sim"), at("own"), at("models"));
    let now = ["--now", "2026-12-31T00:00:00Z"];
    run(&[
        "--quiet",
        "simulate",
        "--learners",
        "2000",
        "--days",
        "180",
        "--seed",
        "5",
        "--out",
        path_str(&sim),
    ]);
    own_vocabulary_copy(&sim, &own);

    let validate = at("validate");
    run(&[
        "--quiet",
        "validate",
        "--data",
        path_str(&own),
        "--out",
        path_str(&validate),
        "--strict",
        now[0],
        now[1],
    ]);
    run(&[
        "--quiet",
        "train",
        "--data",
        path_str(&own),
        "--name",
        "own",
        "--out",
        path_str(&models),
        "--work",
        path_str(&at("train")),
        "--seed",
        "42",
        now[0],
        now[1],
    ]);
    let version = std::fs::read_dir(models.join("own-gbdt"))
        .expect("model directory")
        .next()
        .expect("a version")
        .expect("entry")
        .path();
    let card = json_file(&version.join("model.json"));
    assert_eq!(
        card["training"]["label"], "inactivity",
        "{}",
        card["training"]
    );
    assert_eq!(
        card["training"]["activity_types"],
        serde_json::json!(["video_play"])
    );
    // The custom types' features and the attributes are the model's, and
    // the card says which.
    assert_eq!(
        card["training"]["features"]["custom_event_types"],
        serde_json::json!(["video_play", "badge_earned"]),
        "by occurrences: a video_play per video watch, a badge per quiz"
    );
    let names: Vec<&str> = card["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    for name in [
        "video_play_count_7d",
        "days_since_badge_earned",
        "weekly_hours",
        "company_size",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let plans = card["features"]
        .as_array()
        .expect("features")
        .iter()
        .find(|f| f["name"] == "plan")
        .expect("plan feature")["categories"]
        .clone();
    assert!(
        plans.as_array().expect("list").contains(&"Pro".into()),
        "{plans}"
    );
    let auc = card["metrics"]["test"]["roc_auc"]["estimate"]
        .as_f64()
        .expect("test AUC");
    assert!(auc > 0.75, "test AUC {auc}");

    let as_of = "2026-05-01T00:00:00Z";
    let predictions = at("predictions.csv");
    let predict_work = at("predict");
    let scoring = |command: &str, extra: &[&str]| {
        let mut args = vec![
            "--quiet",
            command,
            "--model",
            "own-gbdt",
            "--models",
            path_str(&models),
            "--data",
            path_str(&own),
            "--as-of",
            as_of,
            "--work",
            path_str(&predict_work),
            now[0],
            now[1],
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    scoring("predict", &["--out", path_str(&predictions)]);
    let expected = read_predictions(&predictions);
    assert!(expected.len() > 300, "{} active learners", expected.len());
    let pro = expected
        .keys()
        .find(|id| id.ends_with('1'))
        .expect("a learner");
    let explained = scoring("explain", &["--learner", pro]);
    assert!(explained.contains("churn probability"), "{explained}");

    // The committed sample model never saw "Pro" or "tablet": batch scoring
    // reads them as missing and says so, per learner and in the summary.
    let sample_predictions = at("sample-model-predictions.csv");
    let said = run(&[
        "predict",
        "--model",
        "churn-gbdt",
        "--models",
        "models",
        "--data",
        path_str(&own),
        "--as-of",
        as_of,
        "--work",
        path_str(&predict_work),
        "--out",
        path_str(&sample_predictions),
        now[0],
        now[1],
    ]);
    assert!(said.contains("plan=Pro ("), "{said}");
    let mut reader = csv::Reader::from_path(&sample_predictions).expect("csv");
    let headers = reader.headers().expect("header").clone();
    let unseen = headers
        .iter()
        .position(|h| h == "unseen_categories")
        .expect("an unseen_categories column");
    let (mut with, mut without) = (0, 0);
    for row in reader.records() {
        let row = row.expect("row");
        let id: usize = row[0][1..].parse().expect("L0001-style id");
        // Learner index (id - 1) divisible by 5 got the "Pro" plan and a tablet.
        if (id - 1).is_multiple_of(5) {
            assert_eq!(&row[unseen], "plan=Pro;device=tablet", "{id}");
            with += 1;
        } else {
            assert_eq!(&row[unseen], "", "{id}");
            without += 1;
        }
    }
    assert!(with > 0 && without > 0);

    // The server reads `video_play` as activity from the card, counts as
    // counts, the custom types' features and the attributes in `profile`, so
    // raw events give the batch answers.
    let server = ServeProcess::start(&["--models", path_str(&models), "--champion", "own-gbdt"]);
    let (instances, _, _dir) = raw_instances_in(&own, as_of);
    assert!(
        instances
            .iter()
            .any(|i| i.to_string().contains("\"count\"")),
        "raw instances carry counts"
    );
    compare_with_predict(server.addr, &instances, &expected);

    // A learner attribute of the wrong type is a 422 naming the field, and
    // the server keeps answering; an absent one is missing, not an error.
    let mut bad = instances[0].clone();
    bad["profile"]["weekly_hours"] = "lots".into();
    let (status, body) = common::predict(server.addr, &serde_json::json!({"instances": [bad]}));
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string()
            .contains("instances[0].profile.weekly_hours"),
        "{body}"
    );
    let mut without = instances[0].clone();
    if let Some(profile) = without["profile"].as_object_mut() {
        profile.remove("weekly_hours");
        profile.remove("company_size");
    }
    let (status, body) = common::predict(server.addr, &serde_json::json!({"instances": [without]}));
    assert_eq!(status, 200, "{body}");
}

/// The first command of the README's "Two commands", without its comment.
fn readme_first_command() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("## Two commands")
        .nth(1)
        .expect("a \"Two commands\" section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .expect("a shell block in it");
    let first = block.lines().next().expect("a first command");
    first
        .split('#')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Copies the repository as a fresh clone would hold it: no build output, no
/// virtualenv, no earlier results.
fn copy_repository(from: &Path, to: &Path) {
    const LEFT_OUT: [&str; 4] = ["target", ".venv", ".git", "churn-out"];
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let (source, target) = (entry.path(), to.join(&name));
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            if from == Path::new(env!("CARGO_MANIFEST_DIR"))
                && LEFT_OUT.iter().any(|n| name == std::ffi::OsStr::new(n))
            {
                continue;
            }
            copy_repository(&source, &target);
        } else if kind.is_file() {
            std::fs::copy(&source, &target).expect("copy");
        }
    }
}

#[test]
fn the_readme_first_command_runs_in_a_fresh_copy_and_its_example_request_is_answered() {
    // `cargo run --release -- ARGS` is this test's binary with ARGS: the test
    // command has just built it, in the same profile.
    let command = readme_first_command();
    let args = command
        .strip_prefix("cargo run --release -- ")
        .unwrap_or_else(|| panic!("the README's first command is {command:?}"));
    let copy = tempfile::tempdir().expect("tempdir");
    copy_repository(Path::new(env!("CARGO_MANIFEST_DIR")), copy.path());
    let result = Command::new(churn_bin())
        .args(args.split_whitespace())
        .arg("--no-serve")
        .current_dir(copy.path())
        .output()
        .expect("run the README's first command");
    let stdout = text(&result.stdout);
    assert!(
        result.status.success(),
        "{command} --no-serve: {}\n{stdout}",
        text(&result.stderr)
    );
    assert!(stdout.contains("0 rows rejected"), "{stdout}");

    // Everything it promises is there …
    let out = copy.path().join("churn-out/quickstart");
    assert!(out.join("predictions.csv").is_file());
    for kind in ["gbdt", "logistic"] {
        let models = out.join(format!("models/churn-{kind}"));
        let version = std::fs::read_dir(&models)
            .expect("trained model")
            .next()
            .expect("a version")
            .expect("entry")
            .path();
        assert!(
            version.join("report.html").is_file(),
            "{}",
            version.display()
        );
    }

    // … and the server it would start answers the example request it printed
    // with the probability it printed.
    let printed: f64 = stdout
        .split("(batch probability ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no example request in {stdout}"));
    let request = json_file(&out.join("request.json"));
    let server = ServeProcess::start(&["--models", path_str(&out.join("models"))]);
    let (status, answer) = predict(server.addr, &request);
    assert_eq!(status, 200, "{answer}");
    let served = answer["predictions"][0]["churn_probability"]
        .as_f64()
        .expect("probability");
    assert!((served - printed).abs() <= 5e-5, "{served} vs {printed}");
}
