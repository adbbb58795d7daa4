//! `churn import` from a real PostgreSQL server, started here: `initdb` and
//! `pg_ctl` (Debian's `postgresql` package) in a temporary directory, on a
//! free port, as the `postgres` user when the test runs as root. Skipped,
//! with the reason printed, when the server programs are not installed.

use churn_core::{EventType, parse_timestamp};

#[path = "../../../tests/support/postgres_server.rs"]
mod postgres_server;
use postgres_server::PostgresServer as Server;

#[test]
fn a_query_is_streamed_from_a_real_postgresql_and_its_rejects_reconcile() {
    let server = match Server::start() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("SKIPPED: PostgreSQL import test: {why}");
            return;
        }
    };
    let mut client = postgres::Client::connect(&server.url(), postgres::NoTls).expect("connects");
    client
        .batch_execute(
            "CREATE TABLE users (id text, created timestamptz, tier text, channel text);
             INSERT INTO users SELECT 'u' || g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 hour',
                CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'basic' END, 'ads' FROM generate_series(1, 500) g;
             CREATE TABLE activity (user_id text, at timestamptz, kind text, n integer);
             INSERT INTO activity SELECT 'u' || (g % 500 + 1),
                timestamptz '2026-02-01 00:00:00+00' + g * interval '7 minutes',
                (ARRAY['open', 'video_play', 'quiz'])[g % 3 + 1], g % 4 + 1
                FROM generate_series(1, 20000) g;
             UPDATE activity SET user_id = NULL WHERE ctid IN (SELECT ctid FROM activity LIMIT 7);
             UPDATE activity SET kind = 'Bad Kind' WHERE ctid IN (SELECT ctid FROM activity WHERE user_id IS NOT NULL LIMIT 5);",
        )
        .expect("tables");
    let expected_rows: i64 = client
        .query_one("SELECT count(*) FROM activity WHERE kind <> 'quiz'", &[])
        .expect("count")
        .get(0);
    let null_users: i64 = client
        .query_one(
            "SELECT count(*) FROM activity WHERE kind <> 'quiz' AND user_id IS NULL",
            &[],
        )
        .expect("count")
        .get(0);
    let expected_occurrences: i64 = client
        .query_one("SELECT sum(n) FROM activity WHERE kind <> 'quiz' AND user_id IS NOT NULL AND kind <> 'Bad Kind'", &[])
        .expect("sum")
        .get(0);

    let dir = tempfile::tempdir().expect("tempdir");
    let mapping = format!(
        r#"
[contract]
label = "inactivity"
events = {{ activity = ["video_play"] }}

[sources.users]
query = "SELECT id, (extract(epoch FROM created) * 1000)::bigint AS created_ms, tier, channel FROM users"
url = "{url}"
[sources.activity]
query = "SELECT user_id, (extract(epoch FROM at) * 1000)::bigint AS at_ms, kind, n FROM activity WHERE kind <> 'quiz'"
url_env = "CHURN_TEST_PG_URL"

[learners]
source = "users"
learner_id = {{ column = "id" }}
signup_at = {{ column = "created_ms", format = "epoch_ms" }}
plan = {{ column = "tier" }}
acquisition_channel = {{ column = "channel" }}

[[events]]
source = "activity"
learner_id = {{ column = "user_id" }}
ts = {{ column = "at_ms", format = "epoch_ms" }}
event_type = {{ column = "kind", map = {{ open = "login" }} }}
count = {{ column = "n" }}
"#,
        url = server.url()
    );
    std::fs::write(dir.path().join("mapping.toml"), mapping).expect("mapping");
    // SAFETY of the test: only this test reads the variable.
    unsafe { std::env::set_var("CHURN_TEST_PG_URL", server.url()) };
    let mapping = churn_import::Mapping::read(&dir.path().join("mapping.toml")).expect("mapping");
    let out = dir.path().join("out");
    let report = churn_import::import(&mapping, &out).expect("imports");
    let activity = &report.sections[1];
    assert!(activity.reconciles());
    assert_eq!(activity.read as i64, expected_rows);
    let rejected = null_users as usize + 5;
    assert_eq!(
        (activity.rejected, activity.imported),
        (rejected, expected_rows as usize - rejected)
    );
    let rejects = std::fs::read_to_string(out.join("rejects/events-0.csv")).expect("rejects");
    assert_eq!(
        rejects
            .lines()
            .filter(|l| l.contains(",learner_id,"))
            .count() as i64,
        null_users
    );
    assert_eq!(
        rejects
            .lines()
            .filter(|l| l.contains(",event_type,"))
            .count(),
        5
    );

    let now = parse_timestamp("2026-12-31T00:00:00Z").expect("time");
    let loaded = churn_data::load_dir(&out, &churn_data::LoadOptions { now }).expect("loads");
    assert_eq!(loaded.report.total_rejected(), 0);
    let d = &loaded.dataset;
    assert_eq!(d.learners.len(), 500);
    assert_eq!(d.learners.iter().filter(|l| l.plan == "pro").count(), 166);
    let occurrences: u64 = d.events.iter().map(|e| u64::from(e.count)).sum();
    assert_eq!(occurrences as i64, expected_occurrences);
    assert_eq!(d.custom_event_types, ["video_play"]);
    assert!(d.events.iter().any(|e| e.event_type == EventType::Login));
}
