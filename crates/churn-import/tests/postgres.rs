//! `churn import` from a real PostgreSQL server, started here: `initdb` and
//! `pg_ctl` (Debian's `postgresql` package) in a temporary directory, on a
//! free port, as the `postgres` user when the test runs as root. Skipped,
//! with the reason printed, when the server programs are not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use churn_core::{EventType, parse_timestamp};

struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = glob::glob("/usr/lib/postgresql/*/bin/initdb")
        .ok()?
        .filter_map(Result::ok)
        .collect();
    found.sort();
    found.pop().and_then(|p| p.parent().map(Path::to_owned))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Server {
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn start() -> Result<Server, String> {
        let bin =
            pg_bin().ok_or("no /usr/lib/postgresql/*/bin/initdb (Debian package postgresql)")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err("cannot give the data directory to the postgres user".into());
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let server = Server {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = server.dir.path().join("data");
        let out = server
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            server.dir.path().display()
        );
        let out = server
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(server.dir.path().join("log"))
            .args(["-w", "start"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(server.dir.path().join("log")).unwrap_or_default();
            return Err(format!(
                "pg_ctl start failed: {}\n{log}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(server)
    }

    fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

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
