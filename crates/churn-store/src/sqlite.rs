//! The embedded learner store: one SQLite file in WAL mode.
//!
//! Durable means: `synchronous = FULL`, so every commit fsyncs the
//! write-ahead log before `ingest` returns; a power cut loses nothing that
//! was acknowledged, and a batch that was not committed leaves no row.
//! Writes go through one connection (SQLite has one writer at a time);
//! reads take a connection from a pool and see one consistent snapshot.
//! `secure_delete` overwrites erased content, and an erase truncates the
//! log, so an erased learner's bytes are gone from both files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::{Map, Value};

use crate::{
    ContractEvent, History, IngestRow, LearnerProfile, LearnerStore, LearnerSummary, PutOutcome,
    RowOutcome, StoreError,
};

/// `PRAGMA application_id` of a churn store: "chrn".
const APPLICATION_ID: i64 = 0x6368_726e;
/// How long a statement waits for a lock another connection holds.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `PRAGMA user_version`: the schema's version.
const FORMAT: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE learners (
    learner_id TEXT PRIMARY KEY,
    signup_at INTEGER NOT NULL,
    profile TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE events (
    learner_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT,
    event_type TEXT NOT NULL,
    course_id TEXT,
    count INTEGER NOT NULL,
    duration_s REAL,
    score REAL,
    amount REAL,
    latency_ms REAL,
    stalls REAL,
    PRIMARY KEY (learner_id, ts, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX events_by_event_id ON events(event_id) WHERE event_id IS NOT NULL;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counters VALUES ('next_seq', 0);
";

/// Stores older than retention lack this counter; opening adds it.
const RETENTION_COUNTER: &str =
    "INSERT OR IGNORE INTO counters VALUES ('retention_cutoff', -9223372036854775808);";

/// The embedded store. Events are clustered by (learner, time, arrival), so
/// a learner's history is one range of one B-tree.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// An erase committed but its log purge could not finish yet.
    purge_pending: AtomicBool,
}

fn engine(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Engine {
        store: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Settings of every connection.
fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA foreign_keys = OFF;
         PRAGMA cache_size = -65536;
         PRAGMA wal_autocheckpoint = 16384;",
    )
    .map_err(engine(path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(engine(path))
}

impl SqliteStore {
    /// Opens the store at `path`, creating it when the file does not exist.
    /// A file that is not a churn store, is of another format version, or
    /// fails SQLite's integrity check is refused with an error that says so.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let exists = path.exists();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Engine {
                store: path.display().to_string(),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(engine(path))?;
        let foreign = |reason: String| StoreError::Foreign {
            path: path.to_owned(),
            reason,
        };
        // A file that is not SQLite fails on its first read.
        let application_id: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| foreign(e.to_string()))?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(|e| foreign(e.to_string()))?;
        if exists && (application_id != 0 || tables != 0) {
            if application_id != APPLICATION_ID {
                return Err(foreign(format!(
                    "its application id is {application_id:#x}, a churn store's is {APPLICATION_ID:#x}"
                )));
            }
            let found: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(engine(path))?;
            if found != FORMAT {
                return Err(StoreError::Version {
                    path: path.to_owned(),
                    found,
                    expected: FORMAT,
                });
            }
            let check: Vec<String> = conn
                .prepare("PRAGMA quick_check")
                .and_then(|mut s| {
                    s.query_map([], |r| r.get::<_, String>(0))?
                        .collect::<Result<_, _>>()
                })
                .map_err(|e| StoreError::Corrupt {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            if check != ["ok"] {
                return Err(StoreError::Corrupt {
                    path: path.to_owned(),
                    reason: check.join("; "),
                });
            }
            configure(&conn, path)?;
            conn.execute_batch(RETENTION_COUNTER)
                .map_err(engine(path))?;
        } else {
            configure(&conn, path)?;
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} {RETENTION_COUNTER} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {FORMAT}; COMMIT;"
            ))
            .map_err(engine(path))?;
        }
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            purge_pending: AtomicBool::new(false),
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        engine(&self.path)
    }

    /// A learner's stored profile, read in `tx`.
    fn profile_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        learner_id: &str,
    ) -> Result<Option<Map<String, Value>>, StoreError> {
        let text: Option<String> = tx
            .query_row(
                "SELECT profile FROM learners WHERE learner_id = ?1",
                params![learner_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        text.map(|t| parse_profile(&t).map_err(self.err()))
            .transpose()
    }

    /// The retention cutoff, read in `conn`'s transaction.
    fn cutoff_in(&self, conn: &Connection) -> Result<Option<i64>, StoreError> {
        let value: i64 = conn
            .query_row(
                "SELECT value FROM counters WHERE name = 'retention_cutoff'",
                [],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        Ok((value != i64::MIN).then_some(value))
    }

    /// Replaces the events before `cutoff` of `learners` with their
    /// summaries, in one transaction; counts what it did into `done`.
    fn compact_learners(
        &self,
        learners: &[String],
        cutoff: i64,
        done: &mut crate::Compacted,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())?;
        {
            let mut seq: i64 = tx
                .query_row(
                    "SELECT value FROM counters WHERE name = 'next_seq'",
                    [],
                    |r| r.get(0),
                )
                .map_err(self.err())?;
            let mut select = tx
                .prepare_cached(
                    "SELECT ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls
                     FROM events WHERE learner_id = ?1 AND ts < ?2 ORDER BY ts, seq",
                )
                .map_err(self.err())?;
            let mut delete = tx
                .prepare_cached("DELETE FROM events WHERE learner_id = ?1 AND ts < ?2")
                .map_err(self.err())?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (learner_id, event_id, ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls, seq)
                     VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(self.err())?;
            for learner in learners {
                let old = select
                    .query_map(params![learner, cutoff], event_of_row)
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(self.err())?;
                let rows_before = old.len();
                let summary = crate::retention::summarize(old);
                if summary.len() == rows_before {
                    continue;
                }
                delete
                    .execute(params![learner, cutoff])
                    .map_err(self.err())?;
                for e in &summary {
                    insert
                        .execute(params![
                            learner,
                            e.ts,
                            e.event_type,
                            e.course_id,
                            e.count,
                            measure(e.duration_s),
                            measure(e.score),
                            measure(e.amount),
                            measure(e.latency_ms),
                            measure(e.stalls),
                            seq,
                        ])
                        .map_err(self.err())?;
                    seq += 1;
                }
                done.learners += 1;
                done.rows_before += rows_before as u64;
                done.rows_after += summary.len() as u64;
            }
            tx.execute(
                "UPDATE counters SET value = ?1 WHERE name = 'next_seq'",
                params![seq],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.writer.lock().map_err(|_| StoreError::Engine {
            store: self.describe(),
            reason: "a writer panicked; restart the server".into(),
        })
    }

    /// Runs `read` on a pooled reading connection.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(self.err())?;
                configure(&conn, &self.path)?;
                conn
            }
        };
        let result = read(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            pool.push(conn);
        }
        result
    }

    /// Checkpoints the log into the database file and truncates it, so no
    /// erased byte stays in the log. Readers holding an old snapshot can keep
    /// a checkpoint from finishing (it waits up to `wait` for them); then the
    /// purge stays pending and the next write tries again. The erase itself
    /// is committed either way.
    fn purge_log(&self, conn: &Connection, wait: std::time::Duration) {
        let done = conn.busy_timeout(wait).is_ok()
            && conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                })
                .is_ok_and(|busy| busy == 0);
        let _ = conn.busy_timeout(BUSY_TIMEOUT);
        self.purge_pending.store(!done, Ordering::Relaxed);
        if !done {
            tracing::warn!(
                store = %self.describe(),
                "an erased learner's bytes stay in the write-ahead log until the next write's checkpoint: readers kept it busy"
            );
        }
    }

    /// After a write: the purge an earlier erase could not finish.
    fn purge_if_pending(&self, conn: &Connection) {
        if self.purge_pending.load(Ordering::Relaxed) {
            self.purge_log(conn, std::time::Duration::from_millis(100));
        }
    }
}

/// An event from a row of (ts, event_type, course_id, count, duration_s,
/// score, amount, latency_ms, stalls).
fn event_of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContractEvent> {
    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    Ok(ContractEvent {
        ts: r.get(0)?,
        event_type: r.get(1)?,
        course_id: r.get(2)?,
        count: r.get(3)?,
        duration_s: nan(r.get(4)?),
        score: nan(r.get(5)?),
        amount: nan(r.get(6)?),
        latency_ms: nan(r.get(7)?),
        stalls: nan(r.get(8)?),
    })
}

fn measure(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

fn profile_text(profile: &LearnerProfile) -> String {
    Value::Object(profile.json.clone()).to_string()
}

fn parse_profile(text: &str) -> rusqlite::Result<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(rusqlite::Error::InvalidColumnType(
            0,
            "profile".into(),
            rusqlite::types::Type::Text,
        )),
    }
}

impl LearnerStore for SqliteStore {
    fn ingest(&self, rows: &[IngestRow]) -> Result<Vec<RowOutcome>, StoreError> {
        let mut conn = self.writer()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let mut outcomes = Vec::with_capacity(rows.len());
        {
            let mut signup = tx
                .prepare_cached("SELECT signup_at FROM learners WHERE learner_id = ?1")
                .map_err(self.err())?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO events (learner_id, event_id, ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(self.err())?;
            // Arrival order within a learner and time; the counter commits with the batch.
            let mut seq: i64 = tx
                .query_row(
                    "SELECT value FROM counters WHERE name = 'next_seq'",
                    [],
                    |r| r.get(0),
                )
                .map_err(self.err())?;
            let cutoff = self.cutoff_in(&tx)?.unwrap_or(i64::MIN);
            let mut signups: HashMap<&str, Option<i64>> = HashMap::new();
            for row in rows {
                let signup_at = match signups.get(row.learner_id.as_str()) {
                    Some(known) => *known,
                    None => {
                        let found: Option<i64> = signup
                            .query_row(params![row.learner_id], |r| r.get(0))
                            .optional()
                            .map_err(self.err())?;
                        signups.insert(&row.learner_id, found);
                        found
                    }
                };
                let outcome = match signup_at {
                    None => RowOutcome::UnknownLearner,
                    Some(s) if row.event.ts < s => RowOutcome::BeforeSignup,
                    Some(_) if row.event.ts < cutoff => RowOutcome::BeforeRetention,
                    Some(_) => {
                        let e = &row.event;
                        let changed = insert
                            .execute(params![
                                row.learner_id,
                                row.event_id,
                                e.ts,
                                e.event_type,
                                e.course_id,
                                e.count,
                                measure(e.duration_s),
                                measure(e.score),
                                measure(e.amount),
                                measure(e.latency_ms),
                                measure(e.stalls),
                                seq,
                            ])
                            .map_err(self.err())?;
                        seq += 1;
                        if changed == 1 {
                            RowOutcome::Accepted
                        } else {
                            RowOutcome::Duplicate
                        }
                    }
                };
                outcomes.push(outcome);
            }
            tx.execute(
                "UPDATE counters SET value = ?1 WHERE name = 'next_seq'",
                params![seq],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        self.purge_if_pending(&conn);
        Ok(outcomes)
    }

    fn put_profile(
        &self,
        learner_id: &str,
        profile: &LearnerProfile,
    ) -> Result<PutOutcome, StoreError> {
        let mut conn = self.writer()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let existed: bool = tx
            .query_row(
                "SELECT count(*) FROM learners WHERE learner_id = ?1",
                params![learner_id],
                |r| r.get::<_, i64>(0),
            )
            .map_err(self.err())?
            > 0;
        let first_event: Option<i64> = tx
            .query_row(
                "SELECT min(ts) FROM events WHERE learner_id = ?1",
                params![learner_id],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        if first_event.is_some_and(|first| first < profile.signup_at) {
            return Ok(PutOutcome::SignupAfterEvents);
        }
        tx.execute(
            "INSERT INTO learners (learner_id, signup_at, profile) VALUES (?1, ?2, ?3)
             ON CONFLICT(learner_id) DO UPDATE SET signup_at = excluded.signup_at, profile = excluded.profile",
            params![learner_id, profile.signup_at, profile_text(profile)],
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        self.purge_if_pending(&conn);
        Ok(if existed {
            PutOutcome::Replaced
        } else {
            PutOutcome::Created
        })
    }

    fn summary(&self, learner_id: &str) -> Result<Option<LearnerSummary>, StoreError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction().map_err(self.err())?;
            let Some(profile) = self.profile_in(&tx, learner_id)? else {
                return Ok(None);
            };
            let (events, occurrences, first_event, last_event) = tx
                .query_row(
                    "SELECT count(*), coalesce(sum(count), 0), min(ts), max(ts) FROM events WHERE learner_id = ?1",
                    params![learner_id],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(self.err())?;
            Ok(Some(LearnerSummary {
                profile,
                events: events as u64,
                occurrences: occurrences as u64,
                first_event,
                last_event,
            }))
        })
    }

    fn history(&self, learner_id: &str, as_of: i64) -> Result<Option<History>, StoreError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction().map_err(self.err())?;
            crate::retention::check_as_of(self.cutoff_in(&tx)?, as_of)?;
            let Some(profile) = self.profile_in(&tx, learner_id)? else {
                return Ok(None);
            };
            let mut select = tx
                .prepare_cached(
                    "SELECT ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls
                     FROM events WHERE learner_id = ?1 AND ts <= ?2 ORDER BY ts, seq",
                )
                .map_err(self.err())?;
            let events = select
                .query_map(params![learner_id, as_of], event_of_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(self.err())?;
            Ok(Some(History {
                profile,
                events,
            }))
        })
    }

    fn erase(&self, learner_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.writer()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let events = tx
            .execute(
                "DELETE FROM events WHERE learner_id = ?1",
                params![learner_id],
            )
            .map_err(self.err())?;
        let learners = tx
            .execute(
                "DELETE FROM learners WHERE learner_id = ?1",
                params![learner_id],
            )
            .map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        self.purge_log(&conn, std::time::Duration::from_secs(2));
        Ok(events + learners > 0)
    }

    fn compact(&self, cutoff: i64) -> Result<crate::Compacted, StoreError> {
        let cutoff = {
            let mut conn = self.writer()?;
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(self.err())?;
            let cutoff = self.cutoff_in(&tx)?.map_or(cutoff, |c| c.max(cutoff));
            tx.execute(
                "UPDATE counters SET value = ?1 WHERE name = 'retention_cutoff'",
                params![cutoff],
            )
            .map_err(self.err())?;
            tx.commit().map_err(self.err())?;
            cutoff
        };
        let learners: Vec<String> = self.read(|conn| {
            conn.prepare("SELECT DISTINCT learner_id FROM events WHERE ts < ?1")
                .and_then(|mut s| {
                    s.query_map(params![cutoff], |r| r.get(0))?
                        .collect::<Result<_, _>>()
                })
                .map_err(self.err())
        })?;
        let mut done = crate::Compacted::default();
        for chunk in learners.chunks(crate::COMPACT_CHUNK) {
            self.compact_learners(chunk, cutoff, &mut done)?;
        }
        Ok(done)
    }

    fn retention_cutoff(&self) -> Result<Option<i64>, StoreError> {
        self.read(|conn| self.cutoff_in(conn))
    }

    fn purge(&self) -> Result<String, StoreError> {
        let conn = self.writer()?;
        self.purge_log(&conn, std::time::Duration::from_secs(10));
        Ok(if self.purge_pending.load(Ordering::Relaxed) {
            "erased content is overwritten in the database file; the write-ahead log could not be truncated (readers held it): the next write retries".into()
        } else {
            "erased content is overwritten in the database file and the write-ahead log is truncated".into()
        })
    }

    fn counts(&self) -> Result<(u64, u64), StoreError> {
        self.read(|conn| {
            let learners: i64 = conn
                .query_row("SELECT count(*) FROM learners", [], |r| r.get(0))
                .map_err(self.err())?;
            let events: i64 = conn
                .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                .map_err(self.err())?;
            Ok((learners as u64, events as u64))
        })
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(signup: &str) -> LearnerProfile {
        crate::contract::profile(
            &json!({"signup_at": signup, "plan": "free", "acquisition_channel": "ads"}),
            "profile",
        )
        .unwrap()
    }

    fn row(learner: &str, id: Option<&str>, ts: &str) -> IngestRow {
        IngestRow {
            learner_id: learner.into(),
            event_id: id.map(str::to_owned),
            event: ContractEvent {
                ts: churn_core::parse_timestamp(ts).unwrap(),
                event_type: "login".into(),
                course_id: None,
                count: 1,
                duration_s: f64::NAN,
                score: 0.5,
                amount: f64::NAN,
                latency_ms: f64::NAN,
                stalls: f64::NAN,
            },
        }
    }

    /// How many files in `dir` hold the bytes of `text`.
    fn files_holding(dir: &std::path::Path, text: &str) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
            .filter(|bytes| bytes.windows(text.len()).any(|w| w == text.as_bytes()))
            .count()
    }

    #[test]
    fn a_retried_batch_is_duplicates_and_history_comes_back_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(
            store
                .put_profile("L1", &profile("2026-01-01T00:00:00Z"))
                .unwrap(),
            PutOutcome::Created
        );
        let batch = vec![
            row("L1", Some("e2"), "2026-01-03T00:00:00Z"),
            row("L1", Some("e1"), "2026-01-02T00:00:00Z"),
            row("L1", Some("e1"), "2026-01-02T00:00:00Z"),
            row("L2", Some("e3"), "2026-01-02T00:00:00Z"),
            row("L1", None, "2025-12-31T00:00:00Z"),
        ];
        use RowOutcome::*;
        assert_eq!(
            store.ingest(&batch).unwrap(),
            vec![Accepted, Accepted, Duplicate, UnknownLearner, BeforeSignup]
        );
        assert_eq!(
            store.ingest(&batch[..2]).unwrap(),
            vec![Duplicate, Duplicate]
        );
        let history = store
            .history(
                "L1",
                churn_core::parse_timestamp("2026-01-02T12:00:00Z").unwrap(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(history.events.len(), 1, "cut at as_of");
        let all = store.history("L1", i64::MAX).unwrap().unwrap();
        assert!(all.events.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert_eq!(all.events[0].score, 0.5);
        assert!(all.events[0].amount.is_nan());
        let summary = store.summary("L1").unwrap().unwrap();
        assert_eq!((summary.events, summary.occurrences), (2, 2));
        assert_eq!(summary.profile["plan"], "free");
        assert!(store.summary("L2").unwrap().is_none());
        assert_eq!(
            store
                .put_profile("L1", &profile("2026-01-02T12:00:00Z"))
                .unwrap(),
            PutOutcome::SignupAfterEvents
        );
    }

    #[test]
    fn a_reopened_store_keeps_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store
                .put_profile("L1", &profile("2026-01-01T00:00:00Z"))
                .unwrap();
            store
                .ingest(&[row("L1", Some("a"), "2026-01-02T00:00:00Z")])
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.counts().unwrap(), (1, 1));
        assert_eq!(
            store
                .ingest(&[row("L1", Some("a"), "2026-01-02T00:00:00Z")])
                .unwrap(),
            vec![RowOutcome::Duplicate]
        );
    }

    #[test]
    fn foreign_and_corrupt_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "this is not a database, it is a text file of some length\n".repeat(100),
        )
        .unwrap();
        let err = SqliteStore::open(&text).err().unwrap().to_string();
        assert!(
            err.contains("notes.txt") && err.contains("not a churn learner store"),
            "{err}"
        );

        let other = dir.path().join("other.db");
        {
            let conn = Connection::open(&other).unwrap();
            conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
                .unwrap();
        }
        let err = SqliteStore::open(&other).err().unwrap().to_string();
        assert!(err.contains("application id"), "{err}");

        let broken = dir.path().join("broken.db");
        {
            let store = SqliteStore::open(&broken).unwrap();
            store
                .put_profile("L1", &profile("2026-01-01T00:00:00Z"))
                .unwrap();
            let rows: Vec<IngestRow> = (0..2000)
                .map(|i| row("L1", Some(&format!("e{i}")), "2026-01-02T00:00:00Z"))
                .collect();
            store.ingest(&rows).unwrap();
            let conn = store.writer().unwrap();
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
        // Scribble over the middle of the file: b-tree pages, not the header.
        let mut bytes = std::fs::read(&broken).unwrap();
        assert!(bytes.len() > 16384);
        for b in &mut bytes[8192..12288] {
            *b = 0x5a;
        }
        std::fs::write(&broken, bytes).unwrap();
        let err = SqliteStore::open(&broken).err().unwrap().to_string();
        assert!(err.contains("corrupt"), "{err}");
    }

    #[test]
    fn an_erase_that_a_reader_delays_is_purged_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path).unwrap();
        let secret = "learner-held-by-a-reader-91c2";
        store
            .put_profile(secret, &profile("2026-01-01T00:00:00Z"))
            .unwrap();
        store
            .put_profile("kept", &profile("2026-01-01T00:00:00Z"))
            .unwrap();
        let rows: Vec<IngestRow> = (0..300)
            .map(|i| {
                row(
                    secret,
                    Some(&format!("{secret}-{i}")),
                    "2026-01-02T00:00:00Z",
                )
            })
            .collect();
        store.ingest(&rows).unwrap();
        let holding = || files_holding(dir.path(), secret);
        // A reader in the middle of a read transaction holds the log.
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert!(store.erase(secret).unwrap(), "the erase is committed");
        assert!(store.summary(secret).unwrap().is_none());
        assert!(
            holding() > 0,
            "the log still holds the bytes while the reader reads"
        );
        reader.execute_batch("COMMIT").unwrap();
        drop(reader);
        store
            .ingest(&[row("kept", Some("k1"), "2026-01-02T00:00:00Z")])
            .unwrap();
        assert_eq!(holding(), 0, "the next write purged the log");
    }

    #[test]
    fn erase_leaves_no_byte_of_the_learner_in_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path).unwrap();
        let secret = "learner-to-forget-7f3a";
        store
            .put_profile(secret, &profile("2026-01-01T00:00:00Z"))
            .unwrap();
        store
            .put_profile("kept", &profile("2026-01-01T00:00:00Z"))
            .unwrap();
        let rows: Vec<IngestRow> = (0..500)
            .flat_map(|i| {
                [
                    row(
                        secret,
                        Some(&format!("{secret}-event-{i}")),
                        "2026-01-02T00:00:00Z",
                    ),
                    row("kept", Some(&format!("kept-{i}")), "2026-01-02T00:00:00Z"),
                ]
            })
            .collect();
        store.ingest(&rows).unwrap();
        assert!(store.history(secret, i64::MAX).unwrap().is_some());
        let holding = || files_holding(dir.path(), secret);
        assert!(
            holding() > 0,
            "the learner is in the files before the erase"
        );
        assert!(store.erase(secret).unwrap());
        assert!(!store.erase(secret).unwrap(), "nothing left to erase");
        assert!(store.summary(secret).unwrap().is_none());
        assert_eq!(
            store
                .history("kept", i64::MAX)
                .unwrap()
                .unwrap()
                .events
                .len(),
            500
        );
        assert_eq!(holding(), 0, "a file still holds the erased learner");
    }
}
