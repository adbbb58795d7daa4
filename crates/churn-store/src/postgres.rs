//! The shared learner store: PostgreSQL, for several server processes.
//!
//! Durable means what PostgreSQL's commit means (`synchronous_commit` on,
//! the server's default): `ingest` returns once the batch's commit record is
//! flushed. A batch is one transaction, so it is all there or absent.
//! Idempotency is a unique index on (`learner_id`, `event_id`) (`ON
//! CONFLICT DO NOTHING`);
//! ingest takes a share lock on each learner's profile row, so an erase and
//! an ingest of the same learner never interleave. Erased rows are gone from
//! every query at once; their bytes stay in table and index pages (a plain
//! `VACUUM` frees the space without overwriting it) until `purge` rewrites
//! the tables (`VACUUM FULL`), and in PostgreSQL's write-ahead log, archives
//! and backups until those expire: that part is the database operator's.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use postgres::{Client, NoTls};
use serde_json::{Map, Value};

use crate::{
    ContractEvent, History, IngestRow, LearnerProfile, LearnerStore, LearnerSummary, PutOutcome,
    RowOutcome, StoreError,
};

/// The schema's version, in `churn_store_meta`.
const FORMAT: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS churn_store_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS churn_learners (
    learner_id text PRIMARY KEY,
    signup_at bigint NOT NULL,
    profile text NOT NULL
);
CREATE TABLE IF NOT EXISTS churn_events (
    seq bigserial PRIMARY KEY,
    learner_id text NOT NULL,
    event_id text,
    ts bigint NOT NULL,
    event_type text NOT NULL,
    course_id text,
    count bigint NOT NULL,
    duration_s double precision,
    score double precision,
    amount double precision,
    latency_ms double precision,
    stalls double precision
);
CREATE UNIQUE INDEX IF NOT EXISTS churn_events_by_learner_event_id ON churn_events (learner_id, event_id) WHERE event_id IS NOT NULL;
DROP INDEX IF EXISTS churn_events_by_event_id;
CREATE INDEX IF NOT EXISTS churn_events_by_learner ON churn_events (learner_id, ts, seq);
";

/// A PostgreSQL store.
pub struct PostgresStore {
    url: String,
    /// The URL without its password, for logs and errors.
    shown: String,
    pool: Mutex<Vec<Client>>,
}

/// `postgres://user:secret@host/db` → `postgres://user@host/db`.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl PostgresStore {
    /// Connects, creates the tables when missing (one process at a time,
    /// under an advisory lock) and checks the format of existing ones.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore {
            url: url.to_owned(),
            shown: without_password(url),
            pool: Mutex::new(Vec::new()),
        };
        let mut client = store.connect()?;
        store.create_schema(&mut client)?;
        store.give_back(client);
        Ok(store)
    }

    /// Creates the tables when missing, one process at a time, and checks
    /// the format of existing ones.
    fn create_schema(&self, client: &mut Client) -> Result<(), StoreError> {
        let err = self.err();
        let mut tx = client.transaction().map_err(&err)?;
        tx.execute("SELECT pg_advisory_xact_lock(7266207161)", &[])
            .map_err(&err)?;
        tx.batch_execute(SCHEMA).map_err(&err)?;
        let found: Option<String> = tx
            .query_opt(
                "SELECT value FROM churn_store_meta WHERE key = 'format'",
                &[],
            )
            .map_err(&err)?
            .map(|row| self.get(&row, 0))
            .transpose()?;
        match found {
            None => {
                tx.execute(
                    "INSERT INTO churn_store_meta (key, value) VALUES ('format', $1)",
                    &[&FORMAT.to_string()],
                )
                .map_err(&err)?;
            }
            Some(text) if text == FORMAT.to_string() => {}
            Some(text) => {
                return Err(StoreError::Version {
                    path: self.shown.clone().into(),
                    found: text.parse().unwrap_or(-1),
                    expected: FORMAT,
                });
            }
        }
        tx.commit().map_err(&err)?;
        Ok(())
    }

    /// The retention cutoff, read in `tx` (`FOR SHARE` when `lock`: a
    /// compaction raising it waits for the transaction).
    fn cutoff_in(
        &self,
        tx: &mut postgres::Transaction<'_>,
        lock: bool,
    ) -> Result<Option<i64>, StoreError> {
        let sql = if lock {
            "SELECT value FROM churn_store_meta WHERE key = 'retention_cutoff' FOR SHARE"
        } else {
            "SELECT value FROM churn_store_meta WHERE key = 'retention_cutoff'"
        };
        let Some(row) = tx.query_opt(sql, &[]).map_err(self.err())? else {
            return Ok(None);
        };
        let text: String = self.get(&row, 0)?;
        text.parse().map(Some).map_err(|_| StoreError::Engine {
            store: self.shown.clone(),
            reason: format!("retention_cutoff {text:?} is not a time in ms"),
        })
    }

    /// Replaces the events before `cutoff` of `learners` with their
    /// summaries, in one transaction; counts what it did into `done`.
    fn compact_learners(
        &self,
        client: &mut Client,
        learners: &[String],
        cutoff: i64,
        done: &mut crate::Compacted,
    ) -> Result<(), StoreError> {
        let err = self.err();
        let mut tx = client.transaction().map_err(&err)?;
        let insert = tx
            .prepare(
                "INSERT INTO churn_events (learner_id, event_id, ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls)
                 VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .map_err(&err)?;
        for learner in learners {
            // The profile's row lock keeps ingest of this learner out.
            tx.query(
                "SELECT 1 FROM churn_learners WHERE learner_id = $1 FOR UPDATE",
                &[learner],
            )
            .map_err(&err)?;
            let rows = tx
                .query(
                    "SELECT ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls
                     FROM churn_events WHERE learner_id = $1 AND ts < $2 ORDER BY ts, seq",
                    &[learner, &cutoff],
                )
                .map_err(&err)?;
            let old = rows
                .iter()
                .map(|row| self.event_of_row(row))
                .collect::<Result<Vec<_>, _>>()?;
            let rows_before = old.len();
            let summary = crate::retention::summarize(old);
            if summary.len() == rows_before {
                continue;
            }
            tx.execute(
                "DELETE FROM churn_events WHERE learner_id = $1 AND ts < $2",
                &[learner, &cutoff],
            )
            .map_err(&err)?;
            for e in &summary {
                tx.execute(
                    &insert,
                    &[
                        learner,
                        &e.ts,
                        &e.event_type,
                        &e.course_id,
                        &i64::from(e.count),
                        &crate::nullable(e.duration_s),
                        &crate::nullable(e.score),
                        &crate::nullable(e.amount),
                        &crate::nullable(e.latency_ms),
                        &crate::nullable(e.stalls),
                    ],
                )
                .map_err(&err)?;
            }
            done.learners += 1;
            done.rows_before += rows_before as u64;
            done.rows_after += summary.len() as u64;
        }
        tx.commit().map_err(&err)
    }

    /// An event from a row of (ts, event_type, course_id, count, duration_s,
    /// score, amount, latency_ms, stalls).
    fn event_of_row(&self, row: &postgres::Row) -> Result<ContractEvent, StoreError> {
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        Ok(ContractEvent {
            ts: self.get(row, 0)?,
            event_type: self.get(row, 1)?,
            course_id: self.get(row, 2)?,
            count: u32::try_from(self.get::<i64>(row, 3)?).unwrap_or(u32::MAX),
            duration_s: nan(self.get(row, 4)?),
            score: nan(self.get(row, 5)?),
            amount: nan(self.get(row, 6)?),
            latency_ms: nan(self.get(row, 7)?),
            stalls: nan(self.get(row, 8)?),
        })
    }

    fn err(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        move |e| StoreError::Engine {
            store: self.shown.clone(),
            reason: e.to_string(),
        }
    }

    /// Column `index` of `row`, or an error that names the store (never a
    /// panic, whatever a table holds).
    fn get<'a, T: postgres::types::FromSql<'a>>(
        &self,
        row: &'a postgres::Row,
        index: usize,
    ) -> Result<T, StoreError> {
        row.try_get(index).map_err(self.err())
    }

    /// A read-only transaction that sees one snapshot (several statements
    /// agree with each other).
    fn snapshot<'c>(
        &self,
        client: &'c mut Client,
    ) -> Result<postgres::Transaction<'c>, StoreError> {
        client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(self.err())
    }

    /// A learner's stored profile, read in `tx`.
    fn profile_in(
        &self,
        tx: &mut postgres::Transaction<'_>,
        learner_id: &str,
    ) -> Result<Option<Map<String, Value>>, StoreError> {
        tx.query_opt(
            "SELECT profile FROM churn_learners WHERE learner_id = $1",
            &[&learner_id],
        )
        .map_err(self.err())?
        .map(|row| parse_profile(&self.get::<String>(&row, 0)?, &self.shown))
        .transpose()
    }

    fn connect(&self) -> Result<Client, StoreError> {
        Client::connect(&self.url, NoTls).map_err(self.err())
    }

    fn take(&self) -> Result<Client, StoreError> {
        let pooled = self.pool.lock().ok().and_then(|mut pool| pool.pop());
        match pooled {
            Some(client) if !client.is_closed() => Ok(client),
            _ => self.connect(),
        }
    }

    fn give_back(&self, client: Client) {
        if !client.is_closed()
            && let Ok(mut pool) = self.pool.lock()
        {
            pool.push(client);
        }
    }

    /// Runs `call` on a pooled connection.
    fn with<T>(
        &self,
        call: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.take()?;
        let result = call(&mut client);
        self.give_back(client);
        result
    }
}

fn parse_profile(text: &str, store: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(StoreError::Engine {
            store: store.to_owned(),
            reason: "a stored profile is not a JSON object".into(),
        }),
    }
}

impl LearnerStore for PostgresStore {
    fn ingest(&self, rows: &[IngestRow]) -> Result<Vec<RowOutcome>, StoreError> {
        self.with(|client| {
            let err = self.err();
            let mut tx = client.transaction().map_err(&err)?;
            let mut learners: Vec<&str> = rows.iter().map(|r| r.learner_id.as_str()).collect();
            learners.sort_unstable();
            learners.dedup();
            let signups: HashMap<String, i64> = tx
                .query(
                    "SELECT learner_id, signup_at FROM churn_learners WHERE learner_id = ANY($1) FOR SHARE",
                    &[&learners],
                )
                .map_err(&err)?
                .iter()
                .map(|row| Ok((self.get(row, 0)?, self.get(row, 1)?)))
                .collect::<Result<_, StoreError>>()?;
            let cutoff = self.cutoff_in(&mut tx, true)?.unwrap_or(i64::MIN);
            let mut outcomes: Vec<Option<RowOutcome>> = rows
                .iter()
                .map(|row| match signups.get(&row.learner_id) {
                    None => Some(RowOutcome::UnknownLearner),
                    Some(&s) if row.event.ts < s => Some(RowOutcome::BeforeSignup),
                    Some(_) if row.event.ts < cutoff => Some(RowOutcome::BeforeRetention),
                    Some(_) => None,
                })
                .collect();
            let stored: Vec<&IngestRow> = rows
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| o.is_none())
                .map(|(r, _)| r)
                .collect();
            let column = |f: &dyn Fn(&IngestRow) -> Option<f64>| -> Vec<Option<f64>> {
                stored.iter().map(|r| f(r)).collect()
            };
            let learner_ids: Vec<&str> = stored.iter().map(|r| r.learner_id.as_str()).collect();
            let event_ids: Vec<Option<&str>> = stored.iter().map(|r| r.event_id.as_deref()).collect();
            let ts: Vec<i64> = stored.iter().map(|r| r.event.ts).collect();
            let types: Vec<&str> = stored.iter().map(|r| r.event.event_type.as_str()).collect();
            let courses: Vec<Option<&str>> = stored.iter().map(|r| r.event.course_id.as_deref()).collect();
            let counts: Vec<i64> = stored.iter().map(|r| i64::from(r.event.count)).collect();
            let inserted: Vec<(String, Option<String>)> = tx
                .query(
                    "INSERT INTO churn_events (learner_id, event_id, ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[],
                                          $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[])
                     ON CONFLICT (learner_id, event_id) WHERE event_id IS NOT NULL DO NOTHING
                     RETURNING learner_id, event_id",
                    &[
                        &learner_ids,
                        &event_ids,
                        &ts,
                        &types,
                        &courses,
                        &counts,
                        &column(&|r| crate::nullable(r.event.duration_s)),
                        &column(&|r| crate::nullable(r.event.score)),
                        &column(&|r| crate::nullable(r.event.amount)),
                        &column(&|r| crate::nullable(r.event.latency_ms)),
                        &column(&|r| crate::nullable(r.event.stalls)),
                    ],
                )
                .map_err(&err)?
                .iter()
                .map(|row| Ok((self.get(row, 0)?, self.get(row, 1)?)))
                .collect::<Result<_, StoreError>>()?;
            // Of a learner's rows sharing an event_id in one batch, the first is the one stored.
            let mut fresh: HashSet<(String, String)> = inserted
                .into_iter()
                .filter_map(|(learner, id)| Some((learner, id?)))
                .collect();
            let mut stored_rows = rows.iter().zip(outcomes.iter_mut()).filter(|(_, o)| o.is_none());
            for (row, outcome) in &mut stored_rows {
                *outcome = Some(match &row.event_id {
                    None => RowOutcome::Accepted,
                    Some(id) if fresh.remove(&(row.learner_id.clone(), id.clone())) => {
                        RowOutcome::Accepted
                    }
                    Some(_) => RowOutcome::Duplicate,
                });
            }
            tx.commit().map_err(&err)?;
            Ok(outcomes
                .into_iter()
                .map(|o| o.unwrap_or(RowOutcome::Duplicate))
                .collect())
        })
    }

    fn put_profile(
        &self,
        learner_id: &str,
        profile: &LearnerProfile,
    ) -> Result<PutOutcome, StoreError> {
        self.with(|client| {
            let err = self.err();
            let mut tx = client.transaction().map_err(&err)?;
            let first: Option<i64> = self.get(
                &tx.query_one(
                    "SELECT min(ts) FROM churn_events WHERE learner_id = $1",
                    &[&learner_id],
                )
                .map_err(&err)?,
                0,
            )?;
            if first.is_some_and(|first| first < profile.signup_at) {
                return Ok(PutOutcome::SignupAfterEvents);
            }
            let text = Value::Object(profile.json.clone()).to_string();
            let created: bool = self.get(
                &tx.query_one(
                    "INSERT INTO churn_learners (learner_id, signup_at, profile) VALUES ($1, $2, $3)
                     ON CONFLICT (learner_id) DO UPDATE SET signup_at = excluded.signup_at, profile = excluded.profile
                     RETURNING (xmax = 0)",
                    &[&learner_id, &profile.signup_at, &text],
                )
                .map_err(&err)?,
                0,
            )?;
            tx.commit().map_err(&err)?;
            Ok(if created {
                PutOutcome::Created
            } else {
                PutOutcome::Replaced
            })
        })
    }

    fn summary(&self, learner_id: &str) -> Result<Option<LearnerSummary>, StoreError> {
        self.with(|client| {
            let err = self.err();
            let mut tx = self.snapshot(client)?;
            let Some(profile) = self.profile_in(&mut tx, learner_id)? else {
                return Ok(None);
            };
            let row = tx
                .query_one(
                    "SELECT count(*), coalesce(sum(count), 0)::bigint, min(ts), max(ts) FROM churn_events WHERE learner_id = $1",
                    &[&learner_id],
                )
                .map_err(&err)?;
            let (events, occurrences): (i64, i64) = (self.get(&row, 0)?, self.get(&row, 1)?);
            let summary = LearnerSummary {
                profile,
                events: events as u64,
                occurrences: occurrences as u64,
                first_event: self.get(&row, 2)?,
                last_event: self.get(&row, 3)?,
            };
            tx.commit().map_err(&err)?;
            Ok(Some(summary))
        })
    }

    fn history(&self, learner_id: &str, as_of: i64) -> Result<Option<History>, StoreError> {
        self.with(|client| {
            // One snapshot for the profile and the events. (One statement
            // joining both measured slower: its window and sort cost more
            // than the round trips they save.)
            let err = self.err();
            let mut tx = self.snapshot(client)?;
            crate::retention::check_as_of(self.cutoff_in(&mut tx, false)?, as_of)?;
            let Some(profile) = self.profile_in(&mut tx, learner_id)? else {
                return Ok(None);
            };
            let rows = tx
                .query(
                    "SELECT ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls
                     FROM churn_events WHERE learner_id = $1 AND ts <= $2 ORDER BY ts, seq",
                    &[&learner_id, &as_of],
                )
                .map_err(&err)?;
            tx.commit().map_err(&err)?;
            let events = rows
                .iter()
                .map(|row| self.event_of_row(row))
                .collect::<Result<_, StoreError>>()?;
            Ok(Some(History { profile, events }))
        })
    }

    fn compact(&self, cutoff: i64) -> Result<crate::Compacted, StoreError> {
        self.with(|client| {
            let err = self.err();
            let row = client
                .query_one(
                    "INSERT INTO churn_store_meta (key, value) VALUES ('retention_cutoff', $1)
                     ON CONFLICT (key) DO UPDATE
                     SET value = GREATEST(churn_store_meta.value::bigint, excluded.value::bigint)::text
                     RETURNING value",
                    &[&cutoff.to_string()],
                )
                .map_err(&err)?;
            let applied: String = self.get(&row, 0)?;
            let cutoff: i64 = applied.parse().unwrap_or(cutoff);
            let learners: Vec<String> = client
                .query(
                    "SELECT DISTINCT learner_id FROM churn_events WHERE ts < $1",
                    &[&cutoff],
                )
                .map_err(&err)?
                .iter()
                .map(|row| self.get(row, 0))
                .collect::<Result<_, _>>()?;
            let mut done = crate::Compacted::default();
            for chunk in learners.chunks(crate::COMPACT_CHUNK) {
                self.compact_learners(client, chunk, cutoff, &mut done)?;
            }
            Ok(done)
        })
    }

    fn retention_cutoff(&self) -> Result<Option<i64>, StoreError> {
        self.with(|client| {
            let mut tx = self.snapshot(client)?;
            let cutoff = self.cutoff_in(&mut tx, false)?;
            tx.commit().map_err(self.err())?;
            Ok(cutoff)
        })
    }

    fn erase(&self, learner_id: &str) -> Result<bool, StoreError> {
        self.with(|client| {
            let err = self.err();
            let mut tx = client.transaction().map_err(&err)?;
            let learners = tx
                .execute(
                    "DELETE FROM churn_learners WHERE learner_id = $1",
                    &[&learner_id],
                )
                .map_err(&err)?;
            let events = tx
                .execute(
                    "DELETE FROM churn_events WHERE learner_id = $1",
                    &[&learner_id],
                )
                .map_err(&err)?;
            tx.commit().map_err(&err)?;
            Ok(learners + events > 0)
        })
    }

    fn purge(&self) -> Result<String, StoreError> {
        self.with(|client| {
            client
                .batch_execute("VACUUM FULL churn_events, churn_learners")
                .map_err(self.err())?;
            Ok(match client.batch_execute("CHECKPOINT") {
                Ok(()) => "churn_events and churn_learners rewritten (VACUUM FULL) and checkpointed: no deleted row is left in their table or index files; PostgreSQL's write-ahead log segments, archives and backups keep them until they are recycled or expire".into(),
                Err(e) => format!(
                    "churn_events and churn_learners rewritten (VACUUM FULL): no deleted row is left in their table or index files once the old files are unlinked at the next checkpoint (CHECKPOINT refused: {e}); the write-ahead log, archives and backups keep them until they are recycled or expire"
                ),
            })
        })
    }

    fn counts(&self) -> Result<(u64, u64), StoreError> {
        self.with(|client| {
            let err = self.err();
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM churn_learners), (SELECT count(*) FROM churn_events)",
                    &[],
                )
                .map_err(&err)?;
            let (learners, events): (i64, i64) = (self.get(&row, 0)?, self.get(&row, 1)?);
            Ok((learners as u64, events as u64))
        })
    }

    fn describe(&self) -> String {
        format!("postgresql {}", self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_password_never_reaches_a_log() {
        assert_eq!(
            without_password("postgres://churn:s3cret@db.example:5432/app"),
            "postgres://churn@db.example:5432/app"
        );
        assert_eq!(
            without_password("postgresql://churn@localhost/app"),
            "postgresql://churn@localhost/app"
        );
    }
}
