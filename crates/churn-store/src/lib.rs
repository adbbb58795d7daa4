//! The learner store behind learner-keyed serving. Applications post a
//! learner's profile and events as they happen; the server reads a learner's
//! history back to compute features with the training code, and erases a
//! learner on request.
//!
//! [`contract`] checks the JSON of profiles and events by the data
//! contract's rules; [`LearnerStore`] is what the server needs of a store;
//! [`sqlite`] is the embedded store (one file, WAL, fsync at every commit);
//! [`postgres`] the store several server processes share.
//!
//! Invariants every store keeps:
//! - a batch of events commits whole or not at all, and `ingest` returns only
//!   once its commit is durable (an acknowledged event survives a crash);
//! - an `event_id` is stored at most once per learner: a retried batch is
//!   reported as duplicates, never stored twice (two learners' events that
//!   share an id are both kept);
//! - events belong to a learner whose profile is stored, at or after its
//!   `signup_at`;
//! - after `compact(cutoff)`, a learner's events before the cutoff are
//!   [`retention::summarize`]d: features at every as-of time from
//!   `cutoff + 30 d` are exactly those of the full history, and the store
//!   refuses earlier as-of times and events before the cutoff;
//! - `erase` leaves no byte of the learner's profile or events in the store's
//!   files (deleted content is overwritten, the write-ahead log truncated).

pub mod contract;
mod inbox;
pub mod load;
pub mod postgres;
pub mod retention;
pub mod sqlite;

use std::path::PathBuf;

use serde_json::{Map, Value};

pub use contract::{ContractEvent, FieldError, LearnerProfile};

/// A measure as a nullable column: NaN (absent) is NULL.
pub(crate) fn nullable(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

/// Learners compacted per write transaction: ingest waits at most this many
/// learners' rewrites.
const COMPACT_CHUNK: usize = 256;

/// What can go wrong with a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{}: not a churn learner store: {reason}", path.display())]
    Foreign { path: PathBuf, reason: String },
    #[error("{}: the learner store is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: learner store format {found}; this program reads format {expected}", path.display())]
    Version {
        path: PathBuf,
        found: i64,
        expected: i64,
    },
    /// Another process has the embedded store open: its inbox lives in that
    /// process's memory, so a second one would lose rows.
    #[error(
        "{}: the learner store is open in another process (it holds {}); an embedded store has one process at a time: stop the other one, or share a PostgreSQL store between processes",
        path.display(),
        lock.display()
    )]
    InUse { path: PathBuf, lock: PathBuf },
    #[error("learner store {store}: {reason}")]
    Engine { store: String, reason: String },
    #[error("{0}")]
    Config(String),
    /// The store keeps only summaries of the events before its retention
    /// cutoff: features at `as_of` would not be exact.
    #[error(
        "as_of {} is before {}, the earliest time this store answers exactly: it keeps only summaries of the events before its retention cutoff {}",
        churn_core::format_timestamp(*as_of),
        churn_core::format_timestamp(retention::earliest_exact_as_of(*cutoff)),
        churn_core::format_timestamp(*cutoff)
    )]
    BeforeRetention { as_of: i64, cutoff: i64 },
}

/// One event to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestRow {
    pub learner_id: String,
    /// Makes a retry idempotent: an id already stored for this learner is a
    /// duplicate.
    pub event_id: Option<String>,
    pub event: ContractEvent,
}

/// What became of one ingested row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOutcome {
    /// Stored (durable once `ingest` returns).
    Accepted,
    /// Its `event_id` was already stored for its learner (or earlier in the
    /// same batch).
    Duplicate,
    /// No profile is stored for its learner.
    UnknownLearner,
    /// Its `ts` is before its learner's `signup_at`.
    BeforeSignup,
    /// Its `ts` is before the store's retention cutoff, whose events are
    /// summarised (a retry of an event compacted away lands here too).
    BeforeRetention,
}

/// What one [`LearnerStore::compact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compacted {
    /// Learners that had events before the cutoff.
    pub learners: u64,
    /// Their event rows before the cutoff, and the rows that replaced them.
    pub rows_before: u64,
    pub rows_after: u64,
}

/// A stored learner: the profile and what is stored of its events.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnerSummary {
    pub profile: Map<String, Value>,
    /// Event rows stored.
    pub events: u64,
    /// Occurrences they stand for (the sum of their counts).
    pub occurrences: u64,
    pub first_event: Option<i64>,
    pub last_event: Option<i64>,
}

/// A learner's history up to an as-of time: what features are computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub profile: Map<String, Value>,
    /// Events with `ts ≤ as_of`, by time (ties in the order they were stored).
    pub events: Vec<ContractEvent>,
}

/// What `PUT /v1/learners/{id}` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Replaced,
    /// Refused: the new `signup_at` is later than a stored event.
    SignupAfterEvents,
}

/// What the server needs of a learner store. Every call is blocking (the
/// server runs them off its async workers) and safe from many threads.
pub trait LearnerStore: Send + Sync {
    /// Stores the rows that can be stored, in one atomic, durable commit;
    /// one outcome per row, in order.
    fn ingest(&self, rows: &[IngestRow]) -> Result<Vec<RowOutcome>, StoreError>;
    /// Creates or replaces a learner's profile.
    fn put_profile(
        &self,
        learner_id: &str,
        profile: &LearnerProfile,
    ) -> Result<PutOutcome, StoreError>;
    /// The stored profile and event counts; `None` for an unknown learner.
    fn summary(&self, learner_id: &str) -> Result<Option<LearnerSummary>, StoreError>;
    /// The profile and the events up to `as_of`; `None` for an unknown learner.
    fn history(&self, learner_id: &str, as_of: i64) -> Result<Option<History>, StoreError>;
    /// Erases the profile and every event of the learner; false when there
    /// was nothing to erase.
    fn erase(&self, learner_id: &str) -> Result<bool, StoreError>;
    /// Retention: replaces every learner's events before `cutoff` with
    /// their [`retention::summarize`] summary, learner by learner in short
    /// transactions (ingest goes on between them). From its first commit the
    /// store refuses events before the cutoff and histories whose `as_of` is
    /// before [`retention::earliest_exact_as_of`]. A cutoff earlier than one
    /// already applied changes nothing.
    fn compact(&self, cutoff: i64) -> Result<Compacted, StoreError>;
    /// The latest retention cutoff applied, if any.
    fn retention_cutoff(&self) -> Result<Option<i64>, StoreError>;
    /// Removes from the store's files what erasures and compactions left
    /// there: the embedded store's erase already overwrites and truncates,
    /// so this only checkpoints; PostgreSQL keeps deleted rows' bytes in
    /// table and index pages (even after a plain `VACUUM`) until they are
    /// rewritten, so this runs `VACUUM FULL` on the store's tables (an
    /// exclusive lock for the rewrite: a maintenance-window job) and a
    /// checkpoint. Says what it did.
    fn purge(&self) -> Result<String, StoreError>;
    /// Events acknowledged and waiting to be merged into the store's main
    /// table (the embedded store's inbox); 0 where ingest writes the main
    /// table itself. A backlog that keeps growing means merges do not keep
    /// up with ingest.
    fn backlog(&self) -> u64 {
        0
    }
    /// Learners and event rows stored.
    fn counts(&self) -> Result<(u64, u64), StoreError>;
    /// How the store names itself in logs (never a password).
    fn describe(&self) -> String;
}

/// Opens the store a setting names: `postgres://…` (a PostgreSQL store that
/// several server processes share), else a file path (the embedded store,
/// created when missing).
pub fn open(spec: &str) -> Result<Box<dyn LearnerStore>, StoreError> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return Ok(Box::new(postgres::PostgresStore::open(spec)?));
    }
    Ok(Box::new(sqlite::SqliteStore::open(std::path::Path::new(
        spec,
    ))?))
}
