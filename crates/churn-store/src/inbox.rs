//! The embedded store's inbox: events as they arrive, appended to a file of
//! their own in arrival order, and held in memory by learner until a merge
//! moves them into the store's table clustered by learner.
//!
//! Why: in a table clustered by learner, a batch that interleaves many
//! learners dirties one B-tree page per row (plus one of the event-id
//! index), so a durable commit of 1,000 such rows writes about 2,000 pages.
//! Appended in arrival order, the same batch fills a few pages at the end of
//! one table. The merge then writes many batches' rows sorted by learner, so
//! each page of the clustered table is written once for all the rows it
//! gets. The memory copy is what reads and idempotency checks see; the file
//! is what survives a crash (it is read back at open).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OpenFlags, params};

use crate::{ContractEvent, StoreError};

/// The event in columns `first..first + 9` of a row: (ts, event_type,
/// course_id, count, duration_s, score, amount, latency_ms, stalls), NULL
/// measures as NaN.
pub(crate) fn event_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ContractEvent> {
    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    Ok(ContractEvent {
        ts: r.get(first)?,
        event_type: r.get(first + 1)?,
        course_id: r.get(first + 2)?,
        count: r.get(first + 3)?,
        duration_s: nan(r.get(first + 4)?),
        score: nan(r.get(first + 5)?),
        amount: nan(r.get(first + 6)?),
        latency_ms: nan(r.get(first + 7)?),
        stalls: nan(r.get(first + 8)?),
    })
}

/// Runs an insert whose parameters are (learner_id, event_id, ts,
/// event_type, course_id, count, duration_s, score, amount, latency_ms,
/// stalls, seq): the inbox's and the clustered table's.
pub(crate) fn insert_row(
    insert: &mut rusqlite::CachedStatement<'_>,
    learner: &str,
    event_id: Option<&str>,
    e: &ContractEvent,
    seq: i64,
) -> rusqlite::Result<usize> {
    insert.execute(params![
        learner,
        event_id,
        e.ts,
        e.event_type,
        e.course_id,
        e.count,
        crate::nullable(e.duration_s),
        crate::nullable(e.score),
        crate::nullable(e.amount),
        crate::nullable(e.latency_ms),
        crate::nullable(e.stalls),
        seq,
    ])
}

/// A learner id as the inbox keeps it: shared by the map's key and every
/// snapshot a merge takes, so a merge of 400,000 rows copies no id.
pub(crate) type LearnerId = Arc<str>;

/// One event waiting in the inbox, shared (behind an `Arc`) by the inbox and
/// the snapshots merges and reads take of it.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Arrival order, unique across the store (the clustered table keeps it).
    pub seq: i64,
    pub event_id: Option<String>,
    pub event: ContractEvent,
    /// Already written to the clustered table by a merge whose clean-up has
    /// not run yet. Set through a merge's snapshot, so marking a row needs no
    /// lookup; read and counted under the inbox's lock.
    merged: AtomicBool,
}

impl Pending {
    pub fn is_merged(&self) -> bool {
        self.merged.load(Ordering::Relaxed)
    }
}

/// Every event id the store holds (its table's and its inbox's), as a Bloom
/// filter keyed by (learner, id): "not held" is certain, so ingest probes
/// the table's id index only for a "maybe" (a retry, or 1% of new ids).
/// Erased and compacted ids stay in it; that costs a probe, never a wrong
/// answer. Sized for twice the ids it starts with; built (at open, and
/// again larger when full) by the merge thread while ingest goes on: until
/// the first is ready every id is probed.
pub(crate) struct StoredIds {
    filter: fastbloom::BloomFilter<foldhash::fast::FixedState>,
    capacity: usize,
    held: usize,
}

/// Ids a filter is sized for at least.
const MIN_STORED_IDS: usize = 1 << 20;

impl StoredIds {
    /// A filter for `capacity` ids holding every id of the table (read
    /// through `conn`) and `waiting` (the
    /// inbox's, taken before the table is read: a merge moves a row into
    /// the table before it leaves the inbox, so none is missed).
    /// Gives up (None) as soon as `stop` is set.
    pub fn build<'a>(
        conn: &Connection,
        capacity: usize,
        waiting: impl Iterator<Item = (&'a str, &'a str)>,
        stop: &AtomicBool,
    ) -> rusqlite::Result<Option<StoredIds>> {
        let mut ids = StoredIds {
            filter: fastbloom::BloomFilter::with_false_pos(0.01)
                .hasher(foldhash::fast::FixedState::with_seed(0x6368_726e_6964_7321))
                .expected_items(capacity),
            capacity,
            held: 0,
        };
        for (learner, id) in waiting {
            ids.insert(learner, id);
        }
        let mut select = conn.prepare(
            "SELECT learner_id, event_id FROM events INDEXED BY events_by_learner_event_id WHERE event_id IS NOT NULL",
        )?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let learner = row.get_ref(0)?.as_str()?;
            let id = row.get_ref(1)?.as_str()?;
            ids.insert(learner, id);
            if ids.held.is_multiple_of(65_536) && stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
        }
        Ok(Some(ids))
    }

    /// The capacity a filter gets when `expected` ids are known of: twice
    /// that, and at least a million.
    pub fn capacity_for(expected: usize) -> usize {
        expected.saturating_mul(2).max(MIN_STORED_IDS)
    }

    /// Ids put in so far.
    pub fn held(&self) -> usize {
        self.held
    }

    fn insert(&mut self, learner: &str, id: &str) {
        self.filter.insert(&(learner, id));
        self.held += 1;
    }

    fn may_hold(&self, learner: &str, id: &str) -> bool {
        self.filter.contains(&(learner, id))
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

/// The inbox file. The store keeps it behind a mutex that also orders
/// ingests (appends are fsynced under it).
pub(crate) struct InboxFile {
    path: PathBuf,
    conn: Connection,
}

/// One learner's rows waiting, in arrival order, and their event ids (for
/// the idempotency check, without a scan).
#[derive(Default)]
struct Waiting {
    rows: Vec<Arc<Pending>>,
    event_ids: FastSet<String>,
}

/// The inbox's rows in memory: what reads and idempotency checks see. The
/// store keeps it behind a mutex of its own, held only briefly (never across
/// an fsync), so reads do not wait for ingests.
pub(crate) struct Inbox {
    by_learner: FastMap<LearnerId, Waiting>,
    rows: usize,
    unmerged: usize,
    next_seq: i64,
    /// Learners forgotten so far: a merge whose snapshot saw the same count
    /// knows every row of it still waits, without looking each one up.
    erasures: u64,
    /// The store's event ids; until built, every id may be held.
    stored_ids: Option<StoredIds>,
    /// While a filter is being built: the ids remembered since its
    /// snapshot of this inbox, put in when it is installed.
    ids_since_snapshot: Option<Vec<(String, String)>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY,
    learner_id TEXT NOT NULL,
    event_id TEXT,
    ts INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    course_id TEXT,
    count INTEGER NOT NULL,
    duration_s REAL,
    score REAL,
    amount REAL,
    latency_ms REAL,
    stalls REAL
);";

impl InboxFile {
    /// Opens (or creates) the inbox file at `path`, and reads its rows back
    /// into an [`Inbox`] whose new rows are numbered from `next_seq` on (or
    /// after the file's last).
    pub fn open(
        path: &Path,
        next_seq: i64,
        configure: impl Fn(&Connection) -> Result<(), StoreError>,
    ) -> Result<(InboxFile, Inbox), StoreError> {
        let corrupt = |e: rusqlite::Error| StoreError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(corrupt)?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA).map_err(corrupt)?;
        let mut inbox = Inbox {
            by_learner: FastMap::default(),
            rows: 0,
            unmerged: 0,
            next_seq,
            erasures: 0,
            stored_ids: None,
            ids_since_snapshot: None,
        };
        let rows: Vec<(String, i64, Option<String>, ContractEvent)> = conn
            .prepare(
                "SELECT learner_id, seq, event_id, ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls
                 FROM inbox ORDER BY seq",
            )
            .and_then(|mut select| {
                select
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, event_at(r, 3)?)))?
                    .collect::<Result<_, _>>()
            })
            .map_err(corrupt)?;
        for (learner, seq, event_id, event) in rows {
            inbox.remember(learner, seq, event_id, event);
        }
        Ok((
            InboxFile {
                path: path.to_owned(),
                conn,
            },
            inbox,
        ))
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| StoreError::Engine {
            store: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// Appends rows numbered from `first` on, in one durable commit.
    pub fn append(
        &self,
        first: i64,
        rows: &[(String, Option<String>, ContractEvent)],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO inbox (learner_id, event_id, ts, event_type, course_id, count, duration_s, score, amount, latency_ms, stalls, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(self.err())?;
            for (i, (learner, event_id, e)) in rows.iter().enumerate() {
                insert_row(
                    &mut insert,
                    learner,
                    event_id.as_deref(),
                    e,
                    first + i as i64,
                )
                .map_err(self.err())?;
            }
        }
        tx.commit().map_err(self.err())
    }

    /// Deletes rows by arrival number, in one commit.
    pub fn delete(&self, mut seqs: Vec<i64>) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        seqs.sort_unstable();
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM inbox WHERE seq = ?1")
                .map_err(self.err())?;
            for seq in seqs {
                delete.execute(params![seq]).map_err(self.err())?;
            }
        }
        tx.commit().map_err(self.err())
    }

    /// Deletes every row numbered up to `last`, in one commit.
    pub fn delete_through(&self, last: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM inbox WHERE seq <= ?1", params![last])
            .map(|_| ())
            .map_err(self.err())
    }

    /// Deletes a learner's rows; how many there were.
    pub fn erase(&self, learner: &str) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM inbox WHERE learner_id = ?1", params![learner])
            .map_err(self.err())
    }

    /// Checkpoints the inbox's log into its file and truncates it (after an
    /// erase); false when readers kept it from finishing.
    pub fn truncate_log(&self) -> bool {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok_and(|busy| busy == 0)
    }
}

impl Inbox {
    fn remember(
        &mut self,
        learner: String,
        seq: i64,
        event_id: Option<String>,
        event: ContractEvent,
    ) {
        self.next_seq = self.next_seq.max(seq + 1);
        self.rows += 1;
        self.unmerged += 1;
        if let Some(id) = &event_id {
            if let Some(ids) = &mut self.stored_ids {
                ids.insert(&learner, id);
            }
            if let Some(since) = &mut self.ids_since_snapshot {
                since.push((learner.clone(), id.clone()));
            }
        }
        let waiting = match self.by_learner.get_mut(learner.as_str()) {
            Some(waiting) => waiting,
            None => self.by_learner.entry(Arc::from(learner)).or_default(),
        };
        if let Some(id) = &event_id {
            waiting.event_ids.insert(id.clone());
        }
        waiting.rows.push(Arc::new(Pending {
            seq,
            event_id,
            event,
            merged: AtomicBool::new(false),
        }));
    }

    /// The next arrival number; at least `floor` from now on.
    pub fn next_seq(&mut self, floor: i64) -> i64 {
        self.next_seq = self.next_seq.max(floor);
        self.next_seq
    }

    /// Numbers for `n` rows: the first of them.
    pub fn reserve(&mut self, n: usize) -> i64 {
        let first = self.next_seq;
        self.next_seq += n as i64;
        first
    }

    /// Whether the store's table may hold a learner's event id (certainly
    /// not when false).
    pub fn may_have_stored(&self, learner: &str, id: &str) -> bool {
        self.stored_ids
            .as_ref()
            .is_none_or(|ids| ids.may_hold(learner, id))
    }

    /// Whether an id filter should be built: none yet, or the one there
    /// holds as many ids as it was sized for; false while one is built.
    pub fn wants_id_filter(&self) -> bool {
        self.ids_since_snapshot.is_none()
            && self
                .stored_ids
                .as_ref()
                .is_none_or(|ids| ids.held >= ids.capacity)
    }

    /// Starts building a filter: this inbox's (learner, event id) pairs now,
    /// and from now on every id remembered is kept for
    /// [`Inbox::install_stored_ids`].
    pub fn snapshot_for_id_filter(&mut self) -> Vec<(String, String)> {
        self.ids_since_snapshot = Some(Vec::new());
        self.by_learner
            .iter()
            .flat_map(|(learner, w)| {
                w.event_ids
                    .iter()
                    .map(|id| (learner.to_string(), id.clone()))
            })
            .collect()
    }

    /// Installs a filter built from a snapshot and then the table, with the
    /// ids remembered since the snapshot; `None` (a build given up) only
    /// ends the build.
    pub fn install_stored_ids(&mut self, ids: Option<StoredIds>) {
        let since = self.ids_since_snapshot.take().unwrap_or_default();
        if let Some(mut ids) = ids {
            for (learner, id) in &since {
                ids.insert(learner, id);
            }
            self.stored_ids = Some(ids);
        }
    }

    /// Rows numbered so far, in the table or here: at least the store's ids.
    pub fn numbered(&self) -> usize {
        usize::try_from(self.next_seq).unwrap_or(0)
    }

    /// Whether a learner's event id waits here.
    pub fn holds_event_id(&self, learner: &str, id: &str) -> bool {
        self.by_learner
            .get(learner)
            .is_some_and(|w| w.event_ids.contains(id))
    }

    /// Keeps rows numbered from `first` on (appended to the file already).
    pub fn remember_all(&mut self, first: i64, rows: Vec<(String, Option<String>, ContractEvent)>) {
        for (i, (learner, event_id, event)) in rows.into_iter().enumerate() {
            self.remember(learner, first + i as i64, event_id, event);
        }
    }

    /// A learner's waiting events, in arrival order.
    pub fn of_learner(&self, learner: &str) -> Vec<Arc<Pending>> {
        self.by_learner
            .get(learner)
            .map(|w| w.rows.clone())
            .unwrap_or_default()
    }

    /// Rows waiting, merged or not; rows not merged yet.
    pub fn len(&self) -> (usize, usize) {
        (self.rows, self.unmerged)
    }

    /// Learners forgotten since the inbox was opened.
    pub fn erasures(&self) -> u64 {
        self.erasures
    }

    /// Every row not merged yet, with its learner, sorted by (learner, ts,
    /// seq): what a merge writes.
    pub fn unmerged_rows(&self) -> Vec<(LearnerId, Arc<Pending>)> {
        let mut learners: Vec<(&LearnerId, &Waiting)> = self.by_learner.iter().collect();
        learners.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::with_capacity(self.unmerged);
        for (learner, waiting) in learners {
            let first = out.len();
            out.extend(
                waiting
                    .rows
                    .iter()
                    .filter(|p| !p.is_merged())
                    .map(|p| (Arc::clone(learner), Arc::clone(p))),
            );
            out[first..].sort_by_key(|(_, p)| (p.event.ts, p.seq));
        }
        out
    }

    /// Whether the row `seq` of `learner` still waits unmerged (not erased).
    pub fn waits(&self, learner: &str, seq: i64) -> bool {
        // A learner's rows are kept in arrival order.
        self.by_learner
            .get(learner)
            .map(|w| &w.rows)
            .is_some_and(|rows| {
                rows.binary_search_by_key(&seq, |p| p.seq)
                    .is_ok_and(|i| !rows[i].is_merged())
            })
    }

    /// Notes that these rows, taken from this inbox and still in it (not
    /// forgotten since), are in the clustered table now.
    pub fn mark_merged<'a>(&mut self, rows: impl IntoIterator<Item = &'a Arc<Pending>>) {
        for row in rows {
            if !row.merged.swap(true, Ordering::Relaxed) {
                self.unmerged -= 1;
            }
        }
    }

    /// The merged rows' numbers (to delete from the file).
    pub fn merged_seqs(&self) -> Vec<i64> {
        self.by_learner
            .values()
            .flat_map(|w| &w.rows)
            .filter(|p| p.is_merged())
            .map(|p| p.seq)
            .collect()
    }

    /// Forgets the merged rows (deleted from the file already).
    pub fn forget_merged(&mut self) {
        let mut removed = 0;
        self.by_learner.retain(|_, waiting| {
            let Waiting { rows, event_ids } = waiting;
            rows.retain(|p| {
                if p.is_merged() {
                    removed += 1;
                    if let Some(id) = &p.event_id {
                        event_ids.remove(id);
                    }
                }
                !p.is_merged()
            });
            !rows.is_empty()
        });
        self.rows -= removed;
    }

    /// Forgets a learner's rows (erased from the file already).
    pub fn forget_learner(&mut self, learner: &str) {
        if let Some(waiting) = self.by_learner.remove(learner) {
            self.unmerged -= waiting.rows.iter().filter(|p| !p.is_merged()).count();
            self.rows -= waiting.rows.len();
            self.erasures += 1;
        }
    }

    /// The learners with rows waiting.
    pub fn learners(&self) -> Vec<String> {
        self.by_learner.keys().map(|l| l.to_string()).collect()
    }
}
