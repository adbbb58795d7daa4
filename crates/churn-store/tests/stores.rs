//! Every store behaves the same: the embedded SQLite store and PostgreSQL (a
//! real server started here; skipped, with the reason printed, when the
//! server programs are not installed) pass one set of checks, and two
//! PostgreSQL stores (as two server processes would hold) see each other's
//! writes.

use churn_store::{ContractEvent, IngestRow, LearnerProfile, LearnerStore, PutOutcome, RowOutcome};
use serde_json::json;

#[path = "../../../tests/support/postgres_server.rs"]
mod postgres_server;
use postgres_server::PostgresServer;

fn profile(signup: &str) -> LearnerProfile {
    churn_store::contract::profile(
        &json!({"signup_at": signup, "plan": "free", "acquisition_channel": "ads", "age": 30}),
        "profile",
    )
    .expect("profile")
}

fn ts(text: &str) -> i64 {
    churn_core::parse_timestamp(text).expect("timestamp")
}

fn row(learner: &str, id: Option<&str>, at: &str) -> IngestRow {
    IngestRow {
        learner_id: learner.into(),
        event_id: id.map(str::to_owned),
        event: ContractEvent {
            ts: ts(at),
            event_type: "lesson_completed".into(),
            course_id: Some("C1".into()),
            count: 2,
            duration_s: 30.0,
            score: f64::NAN,
            amount: f64::NAN,
            latency_ms: f64::NAN,
            stalls: 0.0,
        },
    }
}

/// The checks every store passes.
fn behaves_as_a_learner_store(store: &dyn LearnerStore) {
    use RowOutcome::*;
    assert_eq!(
        store
            .put_profile("L1", &profile("2026-01-01T00:00:00Z"))
            .expect("put"),
        PutOutcome::Created
    );
    assert_eq!(
        store
            .put_profile("L1", &profile("2026-01-01T00:00:00Z"))
            .expect("put"),
        PutOutcome::Replaced
    );
    let batch = vec![
        row("L1", Some("e2"), "2026-01-03T00:00:00Z"),
        row("L1", Some("e1"), "2026-01-02T00:00:00Z"),
        row("L1", Some("e1"), "2026-01-02T00:00:00Z"),
        row("L9", Some("e3"), "2026-01-02T00:00:00Z"),
        row("L1", None, "2025-12-31T00:00:00Z"),
        row("L1", None, "2026-01-02T00:00:00Z"),
    ];
    assert_eq!(
        store.ingest(&batch).expect("ingest"),
        vec![
            Accepted,
            Accepted,
            Duplicate,
            UnknownLearner,
            BeforeSignup,
            Accepted
        ]
    );
    assert_eq!(
        store.ingest(&batch[..3]).expect("retry"),
        vec![Duplicate; 3]
    );
    let cut = store
        .history("L1", ts("2026-01-02T12:00:00Z"))
        .expect("history")
        .expect("known");
    assert_eq!(cut.events.len(), 2, "events after as_of are left out");
    let all = store
        .history("L1", i64::MAX)
        .expect("history")
        .expect("known");
    assert_eq!(all.events.len(), 3);
    assert!(all.events.windows(2).all(|w| w[0].ts <= w[1].ts));
    let e = &all.events[2];
    assert_eq!(
        (e.count, e.course_id.as_deref(), e.duration_s),
        (2, Some("C1"), 30.0)
    );
    assert!(e.score.is_nan() && e.stalls == 0.0);
    assert_eq!(all.profile["age"], json!(30));
    let summary = store.summary("L1").expect("summary").expect("known");
    assert_eq!((summary.events, summary.occurrences), (3, 6));
    assert_eq!(summary.first_event, Some(ts("2026-01-02T00:00:00Z")));
    assert_eq!(
        store
            .put_profile("L1", &profile("2026-01-02T12:00:00Z"))
            .expect("put"),
        PutOutcome::SignupAfterEvents
    );
    assert_eq!(store.counts().expect("counts"), (1, 3));
    assert!(store.erase("L1").expect("erase"));
    assert!(!store.erase("L1").expect("erase again"));
    assert!(store.history("L1", i64::MAX).expect("history").is_none());
    assert!(store.summary("L1").expect("summary").is_none());
    assert_eq!(store.counts().expect("counts"), (0, 0));
    assert_eq!(
        store.ingest(&batch[..1]).expect("after erase"),
        vec![UnknownLearner],
        "an erased learner's events are refused until its profile comes back"
    );
    // An event id is a learner's: another learner may use the same one.
    for l in ["L2", "L3"] {
        store
            .put_profile(l, &profile("2026-01-01T00:00:00Z"))
            .expect("put");
    }
    assert_eq!(
        store
            .ingest(&[
                row("L2", Some("same"), "2026-01-02T00:00:00Z"),
                row("L3", Some("same"), "2026-01-02T00:00:00Z"),
                row("L2", Some("same"), "2026-01-03T00:00:00Z"),
            ])
            .expect("ingest"),
        vec![Accepted, Accepted, Duplicate]
    );
    assert_eq!(
        store
            .ingest(&[row("L3", Some("same"), "2026-01-04T00:00:00Z")])
            .expect("retry"),
        vec![Duplicate]
    );
    assert!(store.erase("L2").expect("erase") && store.erase("L3").expect("erase"));
}

/// How many files under `dir` hold the bytes of `text`.
fn files_holding(dir: &std::path::Path, text: &str) -> usize {
    std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path()).ok())
        .filter(|bytes| bytes.windows(text.len()).any(|w| w == text.as_bytes()))
        .count()
}

/// Retention: summaries before the cutoff, refusals before the window.
fn compacts(store: &dyn LearnerStore) {
    store
        .put_profile("R1", &profile("2026-01-01T00:00:00Z"))
        .expect("put");
    let rows: Vec<IngestRow> = (0..60)
        .map(|d| {
            row(
                "R1",
                Some(&format!("r-{d}")),
                &churn_core::format_timestamp(ts("2026-01-02T00:00:00Z") + d * 86_400_000),
            )
        })
        .collect();
    assert!(
        store
            .ingest(&rows)
            .expect("ingest")
            .iter()
            .all(|o| *o == RowOutcome::Accepted)
    );
    assert_eq!(store.retention_cutoff().expect("cutoff"), None);
    let cutoff = ts("2026-02-01T00:00:00Z");
    let done = store.compact(cutoff).expect("compact");
    assert_eq!(
        (done.learners, done.rows_before, done.rows_after),
        (1, 30, 1)
    );
    assert_eq!(store.retention_cutoff().expect("cutoff"), Some(cutoff));
    let later = ts("2026-03-03T00:00:00Z");
    let history = store.history("R1", later).expect("history").expect("known");
    assert_eq!(history.events.len(), 1 + 30);
    let occurrences: u32 = history.events.iter().map(|e| e.count).sum();
    assert_eq!(occurrences, 2 * 60, "every occurrence is still counted");
    assert!(matches!(
        store.history("R1", later - 1),
        Err(churn_store::StoreError::BeforeRetention { .. })
    ));
    assert_eq!(
        store.ingest(&rows[..1]).expect("late"),
        vec![RowOutcome::BeforeRetention]
    );
    assert_eq!(
        store.compact(cutoff - 1).expect("again"),
        churn_store::Compacted::default(),
        "an earlier cutoff changes nothing"
    );
    assert_eq!(store.retention_cutoff().expect("cutoff"), Some(cutoff));
    assert!(store.erase("R1").expect("erase"));
}

#[test]
fn the_embedded_store_passes_the_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = churn_store::open(dir.path().join("s.db").to_str().expect("utf-8")).expect("open");
    behaves_as_a_learner_store(store.as_ref());
    compacts(store.as_ref());
}

#[test]
fn postgresql_passes_the_checks_and_two_stores_on_one_server_share_their_learners() {
    let server = match PostgresServer::start() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("SKIPPED: PostgreSQL learner store test: {why}");
            return;
        }
    };
    let url = server.url();
    // Two stores open at once, as two server processes starting together.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| churn_store::open(&url));
        let b = s.spawn(|| churn_store::open(&url));
        (a.join().expect("a"), b.join().expect("b"))
    });
    let (a, b) = (a.expect("store a"), b.expect("store b"));
    assert!(
        a.describe()
            .starts_with("postgresql postgresql://postgres@127.0.0.1:")
    );
    behaves_as_a_learner_store(a.as_ref());
    compacts(a.as_ref());

    a.put_profile("shared", &profile("2026-01-01T00:00:00Z"))
        .expect("put");
    assert_eq!(
        b.ingest(&[row("shared", Some("s1"), "2026-02-01T00:00:00Z")])
            .expect("ingest"),
        vec![RowOutcome::Accepted]
    );
    assert_eq!(
        a.ingest(&[row("shared", Some("s1"), "2026-02-01T00:00:00Z")])
            .expect("ingest"),
        vec![RowOutcome::Duplicate],
        "one event_id across processes"
    );
    assert_eq!(
        a.history("shared", i64::MAX)
            .expect("h")
            .expect("known")
            .events
            .len(),
        1
    );

    // Erasure, then purge: no file of the database holds the learner.
    let secret = "learner-to-forget-5e1b";
    a.put_profile(secret, &profile("2026-01-01T00:00:00Z"))
        .expect("put");
    let rows: Vec<IngestRow> = (0..2000)
        .map(|i| {
            row(
                secret,
                Some(&format!("{secret}-{i}")),
                "2026-02-01T00:00:00Z",
            )
        })
        .collect();
    a.ingest(&rows).expect("ingest");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    client.batch_execute("CHECKPOINT").expect("checkpoint");
    let data: String = client
        .query_one(
            "SELECT setting FROM pg_settings WHERE name = 'data_directory'",
            &[],
        )
        .expect("data directory")
        .get(0);
    let oid: u32 = client
        .query_one(
            "SELECT oid FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .expect("database")
        .get(0);
    let database = std::path::Path::new(&data)
        .join("base")
        .join(oid.to_string());
    let holding = || files_holding(&database, secret);
    assert!(
        holding() > 0,
        "the learner is in the files before the erase"
    );
    assert!(a.erase(secret).expect("erase"));
    client.batch_execute("VACUUM churn_events").expect("vacuum");
    client.batch_execute("CHECKPOINT").expect("checkpoint");
    let after_vacuum = holding();
    let said = a.purge().expect("purge");
    assert!(said.contains("VACUUM FULL"), "{said}");
    assert_eq!(
        holding(),
        0,
        "a file of the database still holds the erased learner"
    );
    eprintln!(
        "files holding the erased learner after a plain VACUUM: {after_vacuum}; after purge: 0"
    );

    // A store of another format is refused by name.
    client
        .execute(
            "UPDATE churn_store_meta SET value = '99' WHERE key = 'format'",
            &[],
        )
        .expect("update");
    let err = churn_store::open(&url)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("format 99") && !err.contains("secret"),
        "{err}"
    );
}
