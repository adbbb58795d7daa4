//! The embedded learner store: a SQLite file in WAL mode (profiles and the
//! events clustered by learner) and its inbox beside it (`<path>-inbox`,
//! events in arrival order; see [`crate::inbox`]).
//!
//! Durable means: `synchronous = FULL`, so every commit fsyncs the
//! write-ahead log before `ingest` returns; a power cut loses nothing that
//! was acknowledged, and a batch that was not committed leaves no row.
//! Ingest appends to the inbox; a merge thread moves inbox rows into the
//! clustered table in large transactions sorted by learner. Writes to each
//! file go through one connection (SQLite has one writer at a time); reads
//! take a connection from a pool, read the learner's inbox rows, then the
//! table in one snapshot, and keep one copy of a row found in both.
//! `secure_delete` overwrites erased content, and an erase truncates both
//! files' logs, so an erased learner's bytes are gone from every file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::{Map, Value};

use crate::inbox::{FastMap, FastSet, Inbox, InboxFile, LearnerId, Pending, StoredIds, insert_row};
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
CREATE UNIQUE INDEX events_by_learner_event_id ON events(learner_id, event_id) WHERE event_id IS NOT NULL;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counters VALUES ('next_seq', 0);
";

/// Stores made before event ids were scoped to their learner index them
/// alone; opening moves them to the per-learner index (once).
const EVENT_ID_PER_LEARNER: &str = "
BEGIN;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_learner_event_id ON events(learner_id, event_id) WHERE event_id IS NOT NULL;
DROP INDEX IF EXISTS events_by_event_id;
COMMIT;";

/// Stores older than retention lack this counter; opening adds it.
const RETENTION_COUNTER: &str =
    "INSERT OR IGNORE INTO counters VALUES ('retention_cutoff', -9223372036854775808);";

/// Unmerged inbox rows at which a merge starts (the default). A merge writes
/// about one table page and one index page per learner it touches, so the
/// more rows each learner has in it, the fewer pages per row: 400,000 took
/// 121-122k interleaved events/s sustained into a 100k-learner store where
/// 200,000 took 103-108k, with the same ceiling on waiting rows (ingest
/// waits at twice this, 800,000 rows, about 250 MB; BENCHMARKS.md).
pub const MERGE_AT: usize = 400_000;

/// Rows written to the clustered table per merge transaction.
const MERGE_CHUNK: usize = 50_000;

/// The embedded store. Events arrive in an inbox (a file of its own, rows in
/// arrival order, see [`crate::inbox`]); a background merge moves them into
/// the table clustered by (learner, time, arrival), so a history is one range
/// of one B-tree plus the learner's rows still in the inbox.
pub struct SqliteStore {
    inner: Arc<Inner>,
    merger: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    path: PathBuf,
    /// Held while the store is open: one process at a time.
    _process_lock: std::fs::File,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// An erase committed but its log purge could not finish yet.
    purge_pending: AtomicBool,
    /// The inbox file; holding it orders ingests. Lock order: `writer`,
    /// then `inbox_file`, then `inbox`, never the reverse.
    inbox_file: Mutex<InboxFile>,
    /// The inbox's rows in memory, held briefly (never across an fsync).
    inbox: Mutex<Inbox>,
    /// One merge at a time (the background one, or compaction's).
    merging: Mutex<()>,
    merge_at: usize,
    /// Wakes the merger; `stop` ends it.
    wake: Condvar,
    wake_lock: Mutex<bool>,
    stop: AtomicBool,
}

fn engine(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Engine {
        store: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// How much of a store file a connection reads through a memory map instead
/// of copying pages in with `pread`: all of it, up to 1 TiB (the build raises
/// SQLite's 2 GiB ceiling to this in `.cargo/config.toml`). The merge reads
/// a page of the clustered table per learner it writes to, most of them
/// outside the 64 MiB page cache; mapped, interleaved ingest into a
/// 10M-event store is 8% faster (BENCHMARKS.md). Writes still go through the
/// log with `pwrite`, so a crash or an erasure behaves as before. The cost:
/// an I/O error on a mapped page is a SIGBUS, not an error SQLite returns.
const MMAP_BYTES: i64 = 1 << 40;

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
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)
        .map_err(engine(path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(engine(path))
}

impl SqliteStore {
    /// Opens the store at `path`, creating it when the file does not exist,
    /// with its inbox beside it (`<path>-inbox`). A file that is not a churn
    /// store, is of another format version, or fails SQLite's integrity
    /// check is refused with an error that says so.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_merging_at(path, MERGE_AT)
    }

    /// [`SqliteStore::open`] that merges the inbox once `merge_at` rows wait
    /// (ingest waits while four times as many do).
    pub fn open_merging_at(path: &Path, merge_at: usize) -> Result<SqliteStore, StoreError> {
        let inner = Arc::new(Inner::open(path, merge_at.max(1))?);
        let merger = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("churn-store-merge".into())
                .spawn(move || inner.merge_when_asked())
                .map_err(|e| StoreError::Engine {
                    store: path.display().to_string(),
                    reason: format!("cannot start the merge thread: {e}"),
                })?
        };
        Ok(SqliteStore {
            inner,
            merger: Some(merger),
        })
    }

    /// Merges every inbox row into the clustered table now.
    pub fn merge(&self) -> Result<usize, StoreError> {
        self.inner.merge_now()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        self.inner.wake.notify_all();
        if let Some(merger) = self.merger.take() {
            let _ = merger.join();
        }
    }
}

impl LearnerStore for SqliteStore {
    fn ingest(&self, rows: &[IngestRow]) -> Result<Vec<RowOutcome>, StoreError> {
        self.inner.ingest(rows)
    }
    fn put_profile(
        &self,
        learner_id: &str,
        profile: &LearnerProfile,
    ) -> Result<PutOutcome, StoreError> {
        self.inner.put_profile(learner_id, profile)
    }
    fn summary(&self, learner_id: &str) -> Result<Option<LearnerSummary>, StoreError> {
        self.inner.summary(learner_id)
    }
    fn history(&self, learner_id: &str, as_of: i64) -> Result<Option<History>, StoreError> {
        self.inner.history(learner_id, as_of)
    }
    fn erase(&self, learner_id: &str) -> Result<bool, StoreError> {
        self.inner.erase(learner_id)
    }
    fn compact(&self, cutoff: i64) -> Result<crate::Compacted, StoreError> {
        self.inner.compact(cutoff)
    }
    fn retention_cutoff(&self) -> Result<Option<i64>, StoreError> {
        self.inner.retention_cutoff()
    }
    fn purge(&self) -> Result<String, StoreError> {
        self.inner.purge()
    }
    fn backlog(&self) -> u64 {
        self.inner.inbox().map_or(0, |inbox| inbox.len().1 as u64)
    }
    fn counts(&self) -> Result<(u64, u64), StoreError> {
        self.inner.counts()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A path beside the store file: its name plus `suffix`.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The inbox file of the store at `path`.
fn inbox_path(path: &Path) -> PathBuf {
    beside(path, "-inbox")
}

/// Takes the store's process lock (`flock` on `<store>-lock`, released when
/// the process ends, however it ends): the inbox and its id filter live in
/// one process's memory, so a second process writing the same files would
/// lose rows (its merge deletes inbox rows the other never merged).
fn lock_store(path: &Path) -> Result<std::fs::File, StoreError> {
    let lock = beside(path, "-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| StoreError::Engine {
            store: path.display().to_string(),
            reason: format!("cannot open {}: {e}", lock.display()),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse {
            path: path.to_owned(),
            lock,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Engine {
            store: path.display().to_string(),
            reason: format!("cannot lock {}: {e}", lock.display()),
        }),
    }
}

impl Inner {
    fn open(path: &Path, merge_at: usize) -> Result<Inner, StoreError> {
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
        let churn_file = exists && (application_id != 0 || tables != 0);
        if churn_file && application_id != APPLICATION_ID {
            return Err(foreign(format!(
                "its application id is {application_id:#x}, a churn store's is {APPLICATION_ID:#x}"
            )));
        }
        let process_lock = lock_store(path)?;
        if churn_file {
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
            conn.execute_batch(EVENT_ID_PER_LEARNER)
                .map_err(engine(path))?;
        } else {
            configure(&conn, path)?;
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} {RETENTION_COUNTER} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {FORMAT}; COMMIT;"
            ))
            .map_err(engine(path))?;
        }
        let next_seq: i64 = conn
            .query_row(
                "SELECT value FROM counters WHERE name = 'next_seq'",
                [],
                |r| r.get(0),
            )
            .map_err(engine(path))?;
        let (inbox_file, mut inbox) = InboxFile::open(&inbox_path(path), next_seq, |c| {
            configure(c, path)?;
            c.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))
                .map_err(engine(path))
        })?;
        // Rows of a learner erased just before a crash (the erase commits
        // the table first) are erased now.
        for learner in inbox.learners() {
            let known: bool = conn
                .query_row(
                    "SELECT count(*) FROM learners WHERE learner_id = ?1",
                    params![learner],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(engine(path))?
                > 0;
            if !known {
                inbox_file.erase(&learner)?;
                inbox.forget_learner(&learner);
            }
        }
        // Rows a merge wrote to the table before a crash kept it from
        // deleting them here: deleted now, so nothing is counted twice. A
        // merge commits the table's `next_seq` past every row it wrote, so
        // only rows numbered below it can be there (none after a clean stop).
        let in_table: Vec<Arc<Pending>> = {
            let mut exists = conn
                .prepare("SELECT 1 FROM events WHERE learner_id = ?1 AND ts = ?2 AND seq = ?3")
                .map_err(engine(path))?;
            let mut found = Vec::new();
            let below = inbox
                .unmerged_rows()
                .into_iter()
                .filter(|(_, p)| p.seq < next_seq);
            for (learner, p) in below {
                if exists
                    .exists(params![&*learner, p.event.ts, p.seq])
                    .map_err(engine(path))?
                {
                    found.push(p);
                }
            }
            found
        };
        if !in_table.is_empty() {
            inbox.mark_merged(&in_table);
            inbox_file.delete(inbox.merged_seqs())?;
            inbox.forget_merged();
        }
        Ok(Inner {
            path: path.to_owned(),
            _process_lock: process_lock,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            purge_pending: AtomicBool::new(false),
            inbox_file: Mutex::new(inbox_file),
            inbox: Mutex::new(inbox),
            merging: Mutex::new(()),
            merge_at,
            wake: Condvar::new(),
            wake_lock: Mutex::new(false),
            stop: AtomicBool::new(false),
        })
    }

    fn inbox_file(&self) -> Result<std::sync::MutexGuard<'_, InboxFile>, StoreError> {
        self.inbox_file.lock().map_err(|_| StoreError::Engine {
            store: self.describe(),
            reason: "an inbox writer panicked; restart the server".into(),
        })
    }

    fn inbox(&self) -> Result<std::sync::MutexGuard<'_, Inbox>, StoreError> {
        self.inbox.lock().map_err(|_| StoreError::Engine {
            store: self.describe(),
            reason: "an inbox writer panicked; restart the server".into(),
        })
    }

    /// The merger thread: merges when asked (or every second, if enough
    /// rows wait), until the store is dropped.
    fn merge_when_asked(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            if let Err(e) = self.build_id_filter_if_wanted() {
                tracing::error!(store = %self.describe(), error = %e, "building the event-id filter failed; ingest probes the table for every id until it is built; retried in a second");
            }
            let waiting = self.inbox().map(|i| i.len().1).unwrap_or(0);
            if waiting >= self.merge_at
                && let Err(e) = self.merge_now()
            {
                tracing::error!(store = %self.describe(), error = %e, "merging the inbox failed; retried in a second");
            }
            if let Ok(asked) = self.wake_lock.lock() {
                let _ = self
                    .wake
                    .wait_timeout(asked, std::time::Duration::from_secs(1));
            }
        }
    }

    /// Moves every unmerged inbox row into the clustered table, in
    /// transactions of `MERGE_CHUNK` rows sorted by learner (so a page of
    /// the table is written once per transaction, whatever the order rows
    /// came in), then deletes them from the inbox. Reads stay right
    /// throughout: a history reads the inbox before the table and keeps one
    /// copy of a row seen in both. A crash between the two steps leaves rows
    /// in both places, and the next merge's `INSERT OR IGNORE` skips them.
    fn merge_now(&self) -> Result<usize, StoreError> {
        let _one = self.merging.lock().map_err(|_| StoreError::Engine {
            store: self.describe(),
            reason: "a merge panicked; restart the server".into(),
        })?;
        let (rows, erasures) = {
            let inbox = self.inbox()?;
            (inbox.unmerged_rows(), inbox.erasures())
        };
        let mut merged = 0;
        let mut whole = true;
        for chunk in rows.chunks(MERGE_CHUNK) {
            if self.stop.load(Ordering::Relaxed) {
                whole = false;
                break;
            }
            merged += self.merge_chunk(chunk, erasures)?;
        }
        let file = self.inbox_file()?;
        match rows.iter().map(|(_, p)| p.seq).max() {
            // Every row numbered up to the last one taken is merged (or was
            // erased): later rows are numbered after it. One range delete
            // at the head of the inbox.
            Some(last) if whole => file.delete_through(last)?,
            _ => file.delete(self.inbox()?.merged_seqs())?,
        }
        self.inbox()?.forget_merged();
        Ok(merged)
    }

    /// Writes a chunk of a merge's snapshot (sorted by learner) to the
    /// clustered table in one transaction; `erasures` is the inbox's count
    /// when the snapshot was taken.
    fn merge_chunk(
        &self,
        chunk: &[(LearnerId, Arc<Pending>)],
        erasures: u64,
    ) -> Result<usize, StoreError> {
        let mut conn = self.writer()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())?;
        // Holding the writer: no erase runs until this commits, and an
        // erase done before took its rows out of the inbox already. With no
        // erase since the snapshot, every row of it still waits (one merge
        // runs at a time).
        let still: Vec<&(LearnerId, Arc<Pending>)> = {
            let inbox = self.inbox()?;
            if inbox.erasures() == erasures {
                chunk.iter().collect()
            } else {
                chunk
                    .iter()
                    .filter(|(learner, p)| inbox.waits(learner, p.seq))
                    .collect()
            }
        };
        let mut last_seq = i64::MIN;
        {
            let mut profile = tx
                .prepare_cached("SELECT count(*) FROM learners WHERE learner_id = ?1")
                .map_err(self.err())?;
            let mut insert = tx.prepare_cached(INSERT_EVENT).map_err(self.err())?;
            // The chunk is sorted by learner: one profile lookup per learner.
            let mut current: Option<(&str, bool)> = None;
            for (learner, p) in &still {
                let is_known = match current {
                    Some((id, known)) if id == &**learner => known,
                    _ => {
                        // Rows of a learner erased just before a crash are dropped, not merged.
                        let known = profile
                            .query_row(params![&**learner], |r| r.get::<_, i64>(0))
                            .map_err(self.err())?
                            > 0;
                        current = Some((learner, known));
                        known
                    }
                };
                if !is_known {
                    continue;
                }
                insert_row(&mut insert, learner, p.event_id.as_deref(), &p.event, p.seq)
                    .map_err(self.err())?;
                last_seq = last_seq.max(p.seq);
            }
            tx.execute(
                "UPDATE counters SET value = max(value, ?1) WHERE name = 'next_seq'",
                params![last_seq.saturating_add(1)],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        // The dropped rows too: they leave the inbox with the merged ones.
        self.inbox()?.mark_merged(still.iter().map(|(_, p)| p));
        drop(conn);
        Ok(still.len())
    }

    /// Builds the event-id filter when there is none or it is full: the
    /// inbox's ids first, then the table's (the order reads use: a merge
    /// deletes an inbox row only after the table has it), then the ids
    /// ingested meanwhile. Runs on the merge thread, so ingest and reads go
    /// on (probing the table for every id until the first filter is in).
    fn build_id_filter_if_wanted(&self) -> Result<(), StoreError> {
        let (waiting, capacity) = {
            let mut inbox = self.inbox()?;
            if !inbox.wants_id_filter() {
                return Ok(());
            }
            // Every row numbered so far is an upper bound on the ids held.
            let expected = inbox.numbered();
            (inbox.snapshot_for_id_filter(), expected)
        };
        let started = std::time::Instant::now();
        let built = self.read(|conn| {
            StoredIds::build(
                conn,
                StoredIds::capacity_for(capacity),
                waiting.iter().map(|(l, id)| (l.as_str(), id.as_str())),
                &self.stop,
            )
            .map_err(self.err())
        });
        // Installed or given up, the build ends either way.
        let (ids, result) = match built {
            Ok(ids) => (ids, Ok(())),
            Err(e) => (None, Err(e)),
        };
        if let Some(ids) = &ids {
            tracing::info!(store = %self.describe(), ids = ids.held(), seconds = started.elapsed().as_secs_f64(), "event-id filter built");
        }
        self.inbox()?.install_stored_ids(ids);
        result
    }

    /// Ingest waits while the merge is this far behind: twice the rows at
    /// which a merge starts.
    fn wait_for_merge(&self) -> Result<(), StoreError> {
        let limit = self.merge_at.saturating_mul(2);
        let started = std::time::Instant::now();
        while self.inbox()?.len().1 >= limit {
            self.wake.notify_all();
            if started.elapsed() > std::time::Duration::from_secs(60) {
                return Err(StoreError::Engine {
                    store: self.describe(),
                    reason: format!("{limit} events wait to be merged for more than a minute"),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(())
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
            // One numbering with the inbox, whose rows are merged later.
            let stored_next: i64 = tx
                .query_row(
                    "SELECT value FROM counters WHERE name = 'next_seq'",
                    [],
                    |r| r.get(0),
                )
                .map_err(self.err())?;
            // Held to the end: ingest numbers no row meanwhile.
            let mut inbox = self.inbox()?;
            let mut seq = inbox.next_seq(stored_next);
            let mut select = tx
                .prepare_cached(
                    "SELECT ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls
                     FROM events WHERE learner_id = ?1 AND ts < ?2 ORDER BY ts, seq",
                )
                .map_err(self.err())?;
            let mut delete = tx
                .prepare_cached("DELETE FROM events WHERE learner_id = ?1 AND ts < ?2")
                .map_err(self.err())?;
            let mut insert = tx.prepare_cached(INSERT_EVENT).map_err(self.err())?;
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
                    insert_row(&mut insert, learner, None, e, seq).map_err(self.err())?;
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
            inbox.next_seq(seq);
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
    crate::inbox::event_at(r, 0)
}

/// Inserts one event row into the clustered table (a row already there,
/// by key or by the learner's event id, is left as it is).
const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events (learner_id, event_id, ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls, seq)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

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

impl Inner {
    /// Checks each row against the stored profiles, the retention cutoff and
    /// the event ids in the table and the inbox, then appends the accepted
    /// ones to the inbox in one durable commit.
    fn ingest(&self, rows: &[IngestRow]) -> Result<Vec<RowOutcome>, StoreError> {
        self.wait_for_merge()?;
        // Held to the end: ingests, profile changes, erasures and cutoff
        // raises happen one at a time, so what the checks below read stays
        // true until the rows are appended.
        let file = self.inbox_file()?;
        // The inbox before the table, as reads do: a merge deletes a row
        // from the inbox only after the table has it.
        // Whether each row's event id waits in the inbox, and whether the
        // table may hold it (the id filter's answer: "no" is certain, so
        // only a "maybe" costs a probe of the table's index).
        let (waiting, maybe_stored): (Vec<bool>, Vec<bool>) = {
            let inbox = self.inbox()?;
            rows.iter()
                .map(|r| match r.event_id.as_deref() {
                    Some(id) => (
                        inbox.holds_event_id(&r.learner_id, id),
                        inbox.may_have_stored(&r.learner_id, id),
                    ),
                    None => (false, false),
                })
                .unzip()
        };
        let (outcomes, accepted) = self.read(|conn| {
            let tx = conn.unchecked_transaction().map_err(self.err())?;
            let cutoff = self.cutoff_in(&tx)?.unwrap_or(i64::MIN);
            let mut signup = tx
                .prepare_cached("SELECT signup_at FROM learners WHERE learner_id = ?1")
                .map_err(self.err())?;
            let mut stored_id = tx
                .prepare_cached("SELECT 1 FROM events WHERE learner_id = ?1 AND event_id = ?2")
                .map_err(self.err())?;
            let mut signups: FastMap<&str, Option<i64>> = FastMap::default();
            let mut fresh: FastSet<(&str, &str)> = FastSet::default();
            let mut outcomes = Vec::with_capacity(rows.len());
            let mut accepted = Vec::new();
            for ((row, waits), maybe_stored) in rows.iter().zip(waiting).zip(maybe_stored) {
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
                    Some(_) => match &row.event_id {
                        Some(id)
                            if waits
                                || !fresh.insert((row.learner_id.as_str(), id.as_str()))
                                || (maybe_stored
                                    && stored_id
                                        .exists(params![row.learner_id, id])
                                        .map_err(self.err())?) =>
                        {
                            RowOutcome::Duplicate
                        }
                        _ => {
                            accepted.push((
                                row.learner_id.clone(),
                                row.event_id.clone(),
                                row.event.clone(),
                            ));
                            RowOutcome::Accepted
                        }
                    },
                };
                outcomes.push(outcome);
            }
            Ok((outcomes, accepted))
        })?;
        let first = self.inbox()?.reserve(accepted.len());
        file.append(first, &accepted)?;
        let waiting = {
            let mut inbox = self.inbox()?;
            inbox.remember_all(first, accepted);
            inbox.len().1
        };
        drop(file);
        if waiting >= self.merge_at {
            self.wake.notify_all();
        }
        if self.purge_pending.load(Ordering::Relaxed) {
            let conn = self.writer()?;
            self.purge_if_pending(&conn);
        }
        Ok(outcomes)
    }

    fn put_profile(
        &self,
        learner_id: &str,
        profile: &LearnerProfile,
    ) -> Result<PutOutcome, StoreError> {
        let mut conn = self.writer()?;
        let file = self.inbox_file()?;
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
        let stored_first: Option<i64> = tx
            .query_row(
                "SELECT min(ts) FROM events WHERE learner_id = ?1",
                params![learner_id],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        let first_event = self
            .inbox()?
            .of_learner(learner_id)
            .iter()
            .map(|p| p.event.ts)
            .chain(stored_first)
            .min();
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
        drop(file);
        self.purge_if_pending(&conn);
        Ok(if existed {
            PutOutcome::Replaced
        } else {
            PutOutcome::Created
        })
    }

    fn summary(&self, learner_id: &str) -> Result<Option<LearnerSummary>, StoreError> {
        let Some((profile, events)) = self.events_of(learner_id, i64::MAX, false)? else {
            return Ok(None);
        };
        Ok(Some(LearnerSummary {
            profile,
            events: events.len() as u64,
            occurrences: events.iter().map(|e| u64::from(e.count)).sum(),
            first_event: events.first().map(|e| e.ts),
            last_event: events.last().map(|e| e.ts),
        }))
    }

    fn history(&self, learner_id: &str, as_of: i64) -> Result<Option<History>, StoreError> {
        Ok(self
            .events_of(learner_id, as_of, true)?
            .map(|(profile, events)| History { profile, events }))
    }

    /// The profile and the events up to `as_of` (refused before the exact
    /// horizon when `exact`): the learner's range of the table and its rows
    /// in the inbox, one copy of each (by arrival number), by time.
    #[allow(clippy::type_complexity)]
    fn events_of(
        &self,
        learner_id: &str,
        as_of: i64,
        exact: bool,
    ) -> Result<Option<(Map<String, Value>, Vec<ContractEvent>)>, StoreError> {
        // The inbox first: a merge deletes its rows there only after they
        // are in the table, so a row is in one of the two reads, or both.
        let pending = self.inbox()?.of_learner(learner_id);
        self.read(|conn| {
            let tx = conn.unchecked_transaction().map_err(self.err())?;
            if exact {
                crate::retention::check_as_of(self.cutoff_in(&tx)?, as_of)?;
            }
            let Some(profile) = self.profile_in(&tx, learner_id)? else {
                return Ok(None);
            };
            let mut select = tx
                .prepare_cached(
                    "SELECT ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls, seq
                     FROM events WHERE learner_id = ?1 AND ts <= ?2 ORDER BY ts, seq",
                )
                .map_err(self.err())?;
            let mut events: Vec<(i64, i64, ContractEvent)> = select
                .query_map(params![learner_id, as_of], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(9)?, event_of_row(r)?))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(self.err())?;
            if pending.iter().any(|p| p.event.ts <= as_of) {
                let stored: std::collections::HashSet<i64> =
                    events.iter().map(|(_, seq, _)| *seq).collect();
                events.extend(
                    pending
                        .iter()
                        .filter(|p| p.event.ts <= as_of && !stored.contains(&p.seq))
                        .map(|p| (p.event.ts, p.seq, p.event.clone())),
                );
                events.sort_by_key(|(ts, seq, _)| (*ts, *seq));
            }
            Ok(Some((
                profile,
                events.into_iter().map(|(_, _, e)| e).collect(),
            )))
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
        // Still holding the writer, so no merge brings the rows back.
        let waiting = {
            let file = self.inbox_file()?;
            let waiting = file.erase(learner_id)?;
            self.inbox()?.forget_learner(learner_id);
            if !file.truncate_log() {
                self.purge_pending.store(true, Ordering::Relaxed);
            }
            waiting
        };
        self.purge_log(&conn, std::time::Duration::from_secs(2));
        Ok(events + learners + waiting > 0)
    }

    fn compact(&self, cutoff: i64) -> Result<crate::Compacted, StoreError> {
        let cutoff = {
            let mut conn = self.writer()?;
            // With the inbox file held, no ingest slips a row in under the new cutoff.
            let _file = self.inbox_file()?;
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
        // Rows before the cutoff may still wait in the inbox: merge them first.
        self.merge_now()?;
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
        let inbox_done = self.inbox_file()?.truncate_log();
        self.purge_log(&conn, std::time::Duration::from_secs(10));
        Ok(
            if !inbox_done || self.purge_pending.load(Ordering::Relaxed) {
                "erased content is overwritten in the database files; a write-ahead log could not be truncated (readers held it): the next write retries".into()
            } else {
                "erased content is overwritten in the database files and their write-ahead logs are truncated".into()
            },
        )
    }

    fn counts(&self) -> Result<(u64, u64), StoreError> {
        // The writer and the inbox together: no merge is half done.
        let conn = self.writer()?;
        let waiting = self.inbox()?.len().1 as u64;
        let learners: i64 = conn
            .query_row("SELECT count(*) FROM learners", [], |r| r.get(0))
            .map_err(self.err())?;
        let events: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(self.err())?;
        Ok((learners as u64, events as u64 + waiting))
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
    fn sqlite_is_built_with_a_cache_per_connection_and_maps_a_whole_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let conn = store.inner.writer().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "one page cache behind a global mutex: {options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        // SQLite clamps the setting to its compiled ceiling (2 GiB by default).
        let mapped: i64 = conn
            .query_row("PRAGMA mmap_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mapped, MMAP_BYTES);
    }

    #[test]
    fn a_second_process_cannot_open_an_open_store_and_may_after_it_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path).unwrap();
        // flock is per open file: a second open in this process is refused
        // as another process's would be.
        match SqliteStore::open(&path) {
            Err(e @ StoreError::InUse { .. }) => {
                let message = e.to_string();
                assert!(message.contains("s.db-lock"), "{message}");
                assert!(message.contains("another process"), "{message}");
            }
            other => panic!("expected InUse, got {:?}", other.map(|_| ())),
        }
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.counts().unwrap(), (0, 0));
    }

    /// Waits for the merge thread's first event-id filter.
    fn wait_for_id_filter(store: &SqliteStore) {
        let started = std::time::Instant::now();
        while store.inner.inbox().unwrap().wants_id_filter() {
            assert!(started.elapsed().as_secs() < 30, "no id filter after 30 s");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn the_id_filter_never_lets_a_stored_id_through_when_it_fills_and_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let ids = |range: std::ops::Range<usize>| -> Vec<IngestRow> {
            range
                .map(|i| {
                    row(
                        &format!("L{}", i % 7),
                        Some(&format!("e{i}")),
                        "2026-01-02T00:00:00Z",
                    )
                })
                .collect()
        };
        let all_duplicates = |store: &SqliteStore| {
            store
                .ingest(&ids(0..400))
                .unwrap()
                .iter()
                .all(|o| *o == RowOutcome::Duplicate)
        };
        {
            let store = SqliteStore::open_merging_at(&path, 1_000_000).unwrap();
            for l in 0..7 {
                store
                    .put_profile(&format!("L{l}"), &profile("2026-01-01T00:00:00Z"))
                    .unwrap();
            }
            wait_for_id_filter(&store);
            store.ingest(&ids(0..300)).unwrap();
            store.merge().unwrap();
            store.ingest(&ids(300..350)).unwrap();
            // A filter sized for 50 ids (300 in the table, 50 in the inbox),
            // as if the store had outgrown it.
            {
                let conn = store.inner.writer().unwrap();
                let mut inbox = store.inner.inbox().unwrap();
                let _ = inbox.snapshot_for_id_filter();
                let small =
                    StoredIds::build(&conn, 50, std::iter::empty(), &AtomicBool::new(false));
                inbox.install_stored_ids(small.unwrap());
            }
            // Full: still right (an overfull filter only says "maybe" more
            // often), and the next build makes a larger one from the
            // inbox, the table and the ids ingested while it reads.
            assert!(store.inner.inbox().unwrap().wants_id_filter());
            let outcomes = store.ingest(&ids(250..400)).unwrap();
            assert_eq!(
                outcomes
                    .iter()
                    .filter(|o| **o == RowOutcome::Duplicate)
                    .count(),
                100
            );
            store.inner.build_id_filter_if_wanted().unwrap();
            assert!(!store.inner.inbox().unwrap().wants_id_filter());
            // Every id is in the table now, and a duplicate.
            store.merge().unwrap();
            assert!(all_duplicates(&store));
        }
        // Built again at open, from both files.
        let store = SqliteStore::open_merging_at(&path, 1_000_000).unwrap();
        wait_for_id_filter(&store);
        assert!(all_duplicates(&store));
        assert_eq!(store.counts().unwrap(), (7, 400));
    }

    #[test]
    fn ids_ingested_while_the_filter_is_built_are_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_merging_at(&dir.path().join("s.db"), 1_000_000).unwrap();
        store
            .put_profile("L1", &profile("2026-01-01T00:00:00Z"))
            .unwrap();
        wait_for_id_filter(&store);
        store
            .ingest(&[row("L1", Some("before"), "2026-01-02T00:00:00Z")])
            .unwrap();
        // A build from a snapshot taken now, with an ingest between the
        // snapshot and the installation.
        let waiting = store.inner.inbox().unwrap().snapshot_for_id_filter();
        store
            .ingest(&[row("L1", Some("during"), "2026-01-02T00:00:00Z")])
            .unwrap();
        let built = {
            let conn = store.inner.writer().unwrap();
            StoredIds::build(
                &conn,
                1000,
                waiting.iter().map(|(l, id)| (l.as_str(), id.as_str())),
                &AtomicBool::new(false),
            )
            .unwrap()
        };
        store.inner.inbox().unwrap().install_stored_ids(built);
        store.merge().unwrap();
        let inbox = store.inner.inbox().unwrap();
        assert!(inbox.may_have_stored("L1", "before"));
        assert!(inbox.may_have_stored("L1", "during"));
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
            let conn = store.inner.writer().unwrap();
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

    #[test]
    fn merges_move_the_inbox_into_the_table_and_reads_never_miss_or_double_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open_merging_at(&path, 7).unwrap();
        let learners = ["A", "B", "C"];
        for l in learners {
            store
                .put_profile(l, &profile("2026-01-01T00:00:00Z"))
                .unwrap();
        }
        let event = |l: &str, i: usize| {
            row(
                l,
                Some(&format!("{l}-{i}")),
                &churn_core::format_timestamp(
                    churn_core::parse_timestamp("2026-01-02T00:00:00Z").unwrap()
                        + (i as i64 % 5) * 60_000,
                ),
            )
        };
        // A reader checks every history while batches arrive and merges run.
        let done = AtomicBool::new(false);
        let acknowledged = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let floor = acknowledged.load(Ordering::SeqCst);
                    let n = store.history("A", i64::MAX).unwrap().unwrap().events.len();
                    let ceiling = acknowledged.load(Ordering::SeqCst) + 4;
                    assert!(n >= floor, "a read missed acknowledged rows: {n} < {floor}");
                    assert!(n <= ceiling, "a read doubled rows: {n} > {ceiling}");
                }
            });
            for k in 0..60 {
                let batch: Vec<IngestRow> = (0..4)
                    .flat_map(|j| learners.map(|l| event(l, k * 4 + j)))
                    .collect();
                let outcomes = store.ingest(&batch).unwrap();
                assert!(outcomes.iter().all(|o| *o == RowOutcome::Accepted));
                acknowledged.fetch_add(4, Ordering::SeqCst);
                if k % 9 == 0 {
                    store.merge().unwrap();
                }
            }
            done.store(true, Ordering::Relaxed);
        });
        let before_merge = store.history("B", i64::MAX).unwrap().unwrap();
        store.merge().unwrap();
        assert_eq!(store.inner.inbox().unwrap().len(), (0, 0));
        let after_merge = store.history("B", i64::MAX).unwrap().unwrap();
        // Debug text: NaN measures compare equal there.
        assert!(
            format!("{before_merge:?}") == format!("{after_merge:?}"),
            "a merge changed a history"
        );
        assert_eq!(after_merge.events.len(), 240);
        assert!(after_merge.events.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert_eq!(store.counts().unwrap(), (3, 720));
        // Retries of merged and waiting rows alike are duplicates.
        assert_eq!(
            store.ingest(&[event("A", 0), event("C", 239)]).unwrap(),
            vec![RowOutcome::Duplicate; 2]
        );
        // Half in the table, half in the inbox: erase leaves no byte.
        let fresh: Vec<IngestRow> = (240..250).map(|i| event("C", i)).collect();
        store.ingest(&fresh).unwrap();
        assert!(store.inner.inbox().unwrap().len().1 > 0);
        assert!(store.erase("C").unwrap());
        assert_eq!(files_holding(dir.path(), "C-24"), 0);
        assert!(store.history("C", i64::MAX).unwrap().is_none());
        // Reopened, the waiting rows are read back from the inbox file.
        store.ingest(&[event("A", 1000)]).unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.history("A", i64::MAX).unwrap().unwrap().events.len(),
            241
        );
        assert_eq!(store.counts().unwrap(), (2, 481));
        assert_eq!(
            store.ingest(&[event("A", 1000)]).unwrap(),
            vec![RowOutcome::Duplicate]
        );
    }

    #[test]
    fn a_merge_cut_short_by_a_crash_counts_nothing_twice_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let store = SqliteStore::open_merging_at(&path, 1_000_000).unwrap();
            store
                .put_profile("L1", &profile("2026-01-01T00:00:00Z"))
                .unwrap();
            let rows: Vec<IngestRow> = (0..50)
                .map(|i| row("L1", Some(&format!("e{i}")), "2026-01-02T00:00:00Z"))
                .collect();
            store.ingest(&rows).unwrap();
            // The table gets the rows; the crash comes before the inbox forgets them.
            let (waiting, erasures) = {
                let inbox = store.inner.inbox().unwrap();
                (inbox.unmerged_rows(), inbox.erasures())
            };
            store.inner.merge_chunk(&waiting[..30], erasures).unwrap();
            assert_eq!(
                store.history("L1", i64::MAX).unwrap().unwrap().events.len(),
                50,
                "read once whether in the table, the inbox or both"
            );
        }
        let store = SqliteStore::open_merging_at(&path, 1_000_000).unwrap();
        assert_eq!(store.inner.inbox().unwrap().len(), (20, 20));
        assert_eq!(store.counts().unwrap(), (1, 50));
        assert_eq!(
            store.history("L1", i64::MAX).unwrap().unwrap().events.len(),
            50
        );
        store.merge().unwrap();
        assert_eq!(store.counts().unwrap(), (1, 50));
    }

    #[test]
    fn a_store_of_global_event_ids_moves_to_per_learner_ids_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            let old = SCHEMA.replace(
                "CREATE UNIQUE INDEX events_by_learner_event_id ON events(learner_id, event_id)",
                "CREATE UNIQUE INDEX events_by_event_id ON events(event_id)",
            );
            conn.execute_batch(&format!(
                "BEGIN; {old} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {FORMAT}; COMMIT;"
            ))
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let indexes: Vec<String> = store
            .inner
            .read(|conn| {
                conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND name LIKE 'events_by%'")
                    .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect::<Result<_, _>>())
                    .map_err(store.inner.err())
            })
            .unwrap();
        assert_eq!(indexes, vec!["events_by_learner_event_id".to_string()]);
    }
}
