//! Loading and validating a churn data directory.
//!
//! A data directory holds `learners`, `courses`, `events` and optionally
//! `assignments`, each as `<table>.csv` or `<table>.parquet`. [`load_dir`] reads
//! them with polars, checks every row against the data contract (DESIGN.md) and
//! returns the accepted rows as a typed [`Dataset`] together with a
//! [`ValidationReport`] holding every rejected row with its row number and reason.
//!
//! Nothing is dropped silently: for each table `read = accepted + rejected`,
//! and [`ValidationReport::write_rejects`] writes the rejected rows, values and
//! all, to `<out>/rejects/<table>.csv`. Only file-level problems (a missing file
//! or column, a column of the wrong type) are errors.

mod columns;
mod contract;
pub mod plain_table;
mod points;
mod spill;
mod validate;
mod validation_report;
mod write;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use churn_core::Event;
pub use churn_core::{Dataset, Table};
pub use columns::TableSource;
pub use validation_report::{Reject, TableReport, ValidationReport, write_rejects_file};
pub use write::{DatasetWriter, Format, write_dataset};

/// A problem with a whole file or directory (row problems are rejects, not errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The data directory does not exist or is not a directory.
    #[error("data directory {0} does not exist or is not a directory")]
    NotADirectory(PathBuf),
    /// A required table has neither a `.csv` nor a `.parquet` file.
    #[error("data directory {dir} has no {table}.csv or {table}.parquet")]
    MissingTable {
        /// The directory searched.
        dir: PathBuf,
        /// The missing table.
        table: Table,
    },
    /// A table has both a `.csv` and a `.parquet` file.
    #[error("data directory {dir} has both {table}.csv and {table}.parquet; keep one")]
    AmbiguousTable {
        /// The directory searched.
        dir: PathBuf,
        /// The table.
        table: Table,
    },
    /// A memory budget below what one bucket of learners needs.
    #[error(
        "a memory budget of {budget} bytes is below the {needed} bytes the learners and one bucket of their events need; give more"
    )]
    MemoryBudget {
        /// The budget given.
        budget: u64,
        /// The least that would do.
        needed: u64,
    },
    /// The file could not be read as CSV / Parquet.
    #[error("cannot read {file}: {message}")]
    Read {
        /// The file.
        file: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// `contract.toml` cannot be read as a contract.
    #[error("{file}: {message}")]
    Contract {
        /// The file.
        file: PathBuf,
        /// What is wrong, with the key at fault.
        message: String,
    },
    /// More distinct custom event types than an event can name.
    #[error(
        "{file}: more than {max} distinct custom event types (e.g. {example:?}); map them to fewer in the import"
    )]
    TooManyCustomEventTypes {
        /// The events file.
        file: PathBuf,
        /// The limit.
        max: usize,
        /// The first name over the limit.
        example: String,
    },
    /// A required column is absent.
    #[error("{file}: missing required column {column:?} (columns found: {})", found.join(", "))]
    MissingColumn {
        /// The file.
        file: PathBuf,
        /// The missing column.
        column: String,
        /// The columns the file has.
        found: Vec<String>,
    },
    /// A column cannot hold the contract's type.
    #[error("{file}: column {column:?} should be {expected}, found {found}")]
    WrongType {
        /// The file.
        file: PathBuf,
        /// The column.
        column: String,
        /// The contract's type.
        expected: String,
        /// What was found instead.
        found: String,
    },
    /// Writing an output file failed.
    #[error("cannot write {file}: {message}")]
    Write {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

pub use contract::{CONTRACT_FILE, Contract, EventsContract};
pub use points::{Points, read_points};

/// How to validate.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// The reference time (ms since epoch UTC): rows with a time after it are rejected.
    pub now: i64,
}

/// The accepted rows and the account of every row read.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Accepted rows, ids resolved.
    pub dataset: Dataset,
    /// The directory's `contract.toml` (the defaults when it has none).
    pub contract: Contract,
    /// Per-table counts and rejected rows.
    pub report: ValidationReport,
}

/// Finds the file of `table` in `dir`: `<table>.csv` or `<table>.parquet`.
pub fn table_file(dir: &Path, table: Table) -> Result<Option<PathBuf>, DataError> {
    let csv = dir.join(format!("{}.csv", table.name()));
    let parquet = dir.join(format!("{}.parquet", table.name()));
    match (csv.is_file(), parquet.is_file()) {
        (true, true) => Err(DataError::AmbiguousTable {
            dir: dir.to_owned(),
            table,
        }),
        (true, false) => Ok(Some(csv)),
        (false, true) => Ok(Some(parquet)),
        (false, false) if table.required() => Err(DataError::MissingTable {
            dir: dir.to_owned(),
            table,
        }),
        (false, false) => Ok(None),
    }
}

/// SHA-256 over a data directory's table files and its `contract.toml`
/// (name, length and bytes of each, in table order; hex): what a model card
/// records as the data it was trained on. The contract is part of it because
/// it changes labels and activity.
pub fn dir_sha256(dir: &Path) -> Result<String, DataError> {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    for table in Table::ALL {
        if let Some(file) = table_file(dir, table)? {
            files.push((table.name(), file));
        }
    }
    let contract = dir.join(CONTRACT_FILE);
    if contract.is_file() {
        files.push((CONTRACT_FILE, contract));
    }
    let mut hasher = Sha256::new();
    for (name, file) in files {
        let len = std::fs::metadata(&file)
            .map_err(|e| DataError::Read {
                file: file.clone(),
                message: e.to_string(),
            })?
            .len();
        hasher.update(name.as_bytes());
        hasher.update(len.to_le_bytes());
        hash_file_into(&mut hasher, &file)?;
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of one file's bytes (hex), read in pieces: what a model card
/// records as a table it was trained or tested on.
pub fn file_sha256(file: &Path) -> Result<String, DataError> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hash_file_into(&mut hasher, file)?;
    Ok(hex(&hasher.finalize()))
}

/// Feeds a file to `hasher` a MiB at a time (a table of gigabytes is never
/// held whole to be hashed).
fn hash_file_into(hasher: &mut sha2::Sha256, file: &Path) -> Result<(), DataError> {
    use sha2::Digest;
    use std::io::Read;
    let error = |e: std::io::Error| DataError::Read {
        file: file.to_owned(),
        message: e.to_string(),
    };
    let mut reader = std::fs::File::open(file).map_err(error)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(error(e)),
        };
        hasher.update(&buffer[..read]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tables of one data set, wherever they are: a data directory's files
/// ([`Tables::of_dir`]) or frames in memory.
#[derive(Clone)]
pub struct Tables {
    pub learners: TableSource,
    pub courses: TableSource,
    pub events: TableSource,
    pub assignments: Option<TableSource>,
    pub deadlines: Option<TableSource>,
}

impl Tables {
    /// The table files of a data directory (the required ones must exist).
    pub fn of_dir(dir: &Path) -> Result<Self, DataError> {
        if !dir.is_dir() {
            return Err(DataError::NotADirectory(dir.to_owned()));
        }
        let required = |table: Table| {
            table_file(dir, table)?
                .map(TableSource::File)
                .ok_or_else(|| DataError::MissingTable {
                    dir: dir.to_owned(),
                    table,
                })
        };
        let optional =
            |table: Table| Ok::<_, DataError>(table_file(dir, table)?.map(TableSource::File));
        Ok(Tables {
            learners: required(Table::Learners)?,
            courses: required(Table::Courses)?,
            events: required(Table::Events)?,
            assignments: optional(Table::Assignments)?,
            deadlines: optional(Table::Deadlines)?,
        })
    }
}

/// Reads and validates every table of a data directory.
pub fn load_dir(dir: &Path, options: &LoadOptions) -> Result<Loaded, DataError> {
    let tables = Tables::of_dir(dir)?;
    let contract = Contract::read_dir(dir)?;
    validate::validate(&tables, options, contract)
}

/// Reads and validates tables by `contract`'s rules: what [`load_dir`] does
/// once it has found the files, for tables from anywhere (frames in memory).
pub fn load_tables(
    tables: &Tables,
    contract: Contract,
    options: &LoadOptions,
) -> Result<Loaded, DataError> {
    validate::validate(tables, options, contract)
}

/// How an out-of-core load divides the learners into partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// As few partitions as keep the whole process within `bytes` (an
    /// estimate from the learners, each partition's events and what the
    /// caller keeps per learner across partitions, e.g. its answers).
    Memory {
        /// The budget.
        bytes: u64,
        /// Bytes the caller holds per learner until the last partition.
        kept_per_learner: u64,
    },
    /// Exactly this many partitions: learner index modulo the count.
    Partitions(NonZeroUsize),
}

/// A data directory validated in full, whose events are handed out one
/// partition of learners at a time, for event tables larger than memory.
///
/// The events file is read once, in slices: every row is validated (the
/// report is the same as [`load_dir`]'s) and every accepted event is spilled
/// to the bucket of its learner in a temporary directory. Each
/// [`Partitioned::events_of`] then reads its buckets back, so only one slice
/// of the file, or one partition's events, is in memory at once, and the cost
/// does not grow with the number of partitions.
pub struct Partitioned {
    /// Learners, courses and assignments; `events` is empty (and the
    /// whole may be taken: the events are read against the learners it had).
    pub dataset: Dataset,
    /// Every table's counts and rejects, as [`load_dir`] gives them.
    pub report: ValidationReport,
    /// The directory's `contract.toml` (the defaults when it has none).
    pub contract: Contract,
    /// Earliest and latest accepted event time (ms), if any event was accepted.
    pub event_span: Option<(i64, i64)>,
    spilled: spill::SpilledEvents,
    /// The number of learners (`dataset` may be taken away).
    learners: usize,
    /// Each partition's range of buckets.
    groups: Vec<std::ops::Range<usize>>,
    /// Custom type indexes as first met → in name order.
    rename: Vec<u16>,
    occurrences: Vec<u64>,
}

/// Rows of the events file read per slice in a partitioned load.
const PARTITIONED_SLICE_ROWS: usize = 1 << 20;

/// Buckets a memory budget may group into partitions: the finest division
/// [`Split::Memory`] can reach.
const MEMORY_SPLIT_BUCKETS: usize = 256;

/// Estimated bytes of memory per event of the partition being computed:
/// the event (64), the sort's buffer and the bucket's bytes as read.
pub const BYTES_PER_EVENT: u64 = 128;

/// Estimated bytes of memory per learner (profile, id index, the features'
/// per-learner state), all partitions together.
pub const BYTES_PER_LEARNER: u64 = 512;

/// Memory held besides learners and events: the slice of the events file
/// being validated, the spill's buffers, the table being written.
pub const RESERVED_BYTES: u64 = 384 << 20;

/// Validates a data directory and spills its events, by learner, into a
/// temporary directory under `spill_in` (removed when the result is
/// dropped), to be computed one partition at a time.
pub fn load_dir_partitioned(
    dir: &Path,
    options: &LoadOptions,
    split: Split,
    spill_in: &Path,
) -> Result<Partitioned, DataError> {
    partitioned(dir, options, split, spill_in, PARTITIONED_SLICE_ROWS)
}

fn partitioned(
    dir: &Path,
    options: &LoadOptions,
    split: Split,
    spill_in: &Path,
    slice_rows: usize,
) -> Result<Partitioned, DataError> {
    let files = Tables::of_dir(dir)?;
    let contract = Contract::read_dir(dir)?;
    let mut profiles =
        validate::validate_profiles(&files.learners, &files.courses, options, contract.clone())?;
    let learners = profiles.dataset.learners.len();
    let buckets = match split {
        Split::Partitions(n) => n.get(),
        Split::Memory { .. } => MEMORY_SPLIT_BUCKETS.min(learners.max(1)),
    };
    let mut spill = spill::SpillWriter::create(spill_in, buckets)?;
    let mut occurrences: Vec<u64> = Vec::new();
    let scan = profiles.scan_events(&files.events, slice_rows, &mut |part| {
        for e in &part {
            if let churn_core::EventKind::Custom { index, .. } = e.event_type {
                let index = usize::from(index);
                if occurrences.len() <= index {
                    occurrences.resize(index + 1, 0);
                }
                occurrences[index] += u64::from(e.count);
            }
        }
        spill.push(&part)
    })?;
    let spilled = spill.finish()?;
    // The pass saw every custom type: fix their order now, so each
    // partition's events name them alike.
    let rename = profiles.sort_custom_event_types(&mut []);
    let mut by_name = vec![0u64; rename.len()];
    for (old, &new) in rename.iter().enumerate() {
        by_name[usize::from(new)] = occurrences.get(old).copied().unwrap_or(0);
    }
    let groups = match split {
        Split::Partitions(_) => (0..buckets).map(|b| b..b + 1).collect(),
        Split::Memory {
            bytes,
            kept_per_learner,
        } => group_buckets(spilled.counts(), learners, bytes, kept_per_learner)?,
    };
    let mut tables = std::mem::take(&mut profiles.tables);
    tables.push(scan.report);
    if let Some(source) = &files.assignments {
        profiles.validate_assignments(source)?;
        tables.append(&mut profiles.tables);
    }
    if let Some(source) = &files.deadlines {
        profiles.validate_deadlines(source)?;
        tables.append(&mut profiles.tables);
    }
    let mut dataset = std::mem::take(&mut profiles.dataset);
    dataset.custom_event_types = profiles.custom_event_types();
    Ok(Partitioned {
        dataset,
        report: ValidationReport { tables },
        contract,
        event_span: scan.span,
        spilled,
        learners,
        groups,
        rename,
        occurrences: by_name,
    })
}

/// Consecutive buckets grouped so that each group's events fit in what the
/// budget leaves after the learners and the reserve.
fn group_buckets(
    counts: &[u64],
    learners: usize,
    budget: u64,
    kept_per_learner: u64,
) -> Result<Vec<std::ops::Range<usize>>, DataError> {
    let fixed = RESERVED_BYTES + learners as u64 * (BYTES_PER_LEARNER + kept_per_learner);
    let largest = counts.iter().max().copied().unwrap_or(0) * BYTES_PER_EVENT;
    if budget < fixed + largest {
        return Err(DataError::MemoryBudget {
            budget,
            needed: fixed + largest,
        });
    }
    let room = budget - fixed;
    let mut groups = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (bucket, &count) in counts.iter().enumerate() {
        let bytes = count * BYTES_PER_EVENT;
        if used + bytes > room && bucket > start {
            groups.push(start..bucket);
            start = bucket;
            used = 0;
        }
        used += bytes;
    }
    groups.push(start..counts.len());
    Ok(groups)
}

impl Partitioned {
    /// The number of partitions.
    pub fn partitions(&self) -> usize {
        self.groups.len()
    }

    /// The partition of a learner (by index).
    pub fn partition_of(&self, learner: u32) -> usize {
        let buckets = self.groups.last().map_or(1, |g| g.end.max(1));
        let bucket = learner as usize % buckets;
        self.groups.partition_point(|g| g.end <= bucket)
    }

    /// The bytes the events took on disk in the spill.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled.total_bytes()
    }

    /// The occurrences (`count` included) of each custom event type, by index.
    pub fn custom_type_occurrences(&self) -> &[u64] {
        &self.occurrences
    }

    /// The accepted events of the learners in `partition`, by learner
    /// index, each learner's in file order.
    pub fn events_of(&self, partition: usize) -> Result<Vec<Event>, DataError> {
        let buckets = self.groups.get(partition).cloned().unwrap_or(0..0);
        self.spilled.read(buckets, self.learners, &self.rename)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = "\
learner_id,ts,event_type,course_id,duration_s,score,amount,latency_ms,stalls
L1,2026-01-10T09:00:00Z,login,,,,,,
L2,2026-01-12T10:00:00Z,quiz_attempt,C1,,0.8,,,
L9,2026-01-12T10:00:00Z,login,,,,,,
L3,2026-01-12T10:00:00Z,login,,,,,,
L1,2026-01-12T10:00:00Z,Clicks!,,,,,,
L2,2026-01-13T10:00:00Z,video_watch,C1,60,,,,
L3,2026-01-14T10:00:00Z,checkin,,,,,,
L1,2026-01-09T00:00:00Z,login,,,,,,
L2,2026-01-15T10:00:00Z,login,,,,,,
L3,2026-01-15T10:00:00Z,payment,,,,-1,,
L1,2026-01-16T10:00:00Z,login,,,,,,
L2,2026-01-16T10:00:00Z,zeta_view,,,,,,
L1,2026-01-17T10:00:00Z,alpha_view,,,,,,
L3,2026-01-17T10:00:00Z,zeta_view,,,,,,
";

    #[test]
    fn partitions_in_small_slices_give_the_same_report_and_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write =
            |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
        write(
            "learners.csv",
            "learner_id,signup_at,plan,acquisition_channel\nL1,2026-01-10T08:00:00Z,free,ads\nL2,2026-01-11T08:00:00Z,annual,ads\nL3,2026-01-11T08:00:00Z,monthly,ads\n",
        );
        write("courses.csv", "course_id,level,lessons\nC1,beginner,10\n");
        write("events.csv", EVENTS);
        let options = LoadOptions {
            now: churn_core::parse_timestamp("2026-06-01T00:00:00Z").expect("valid"),
        };
        let whole = load_dir(dir.path(), &options).expect("loads");
        // Learner by learner, 3, 4 and 3 events are accepted.
        let budget = RESERVED_BYTES + 3 * BYTES_PER_LEARNER + 4 * BYTES_PER_EVENT;
        let spill = tempfile::tempdir().expect("tempdir");
        let memory = |bytes| Split::Memory {
            bytes,
            kept_per_learner: 0,
        };
        let too_small = memory(budget - 1);
        match partitioned(dir.path(), &options, too_small, spill.path(), 4) {
            Err(DataError::MemoryBudget { needed, .. }) => assert_eq!(needed, budget),
            other => panic!("a budget below one bucket: {:?}", other.err()),
        }
        let splits = [
            (Split::Partitions(NonZeroUsize::MIN), 3, 1),
            (Split::Partitions(NonZeroUsize::new(2).expect("2")), 3, 2),
            (Split::Partitions(NonZeroUsize::new(3).expect("3")), 4, 3),
            (Split::Partitions(NonZeroUsize::new(2).expect("2")), 100, 2),
            (memory(budget), 4, 3),
            (memory(budget + 5 * BYTES_PER_EVENT), 2, 2),
            (memory(u64::MAX / 2), 5, 1),
            (
                Split::Memory {
                    bytes: budget + 3 * BYTES_PER_EVENT,
                    kept_per_learner: 1,
                },
                4,
                3,
            ),
        ];
        for (split, slice_rows, partitions) in splits {
            let spill = tempfile::tempdir().expect("tempdir");
            let part =
                partitioned(dir.path(), &options, split, spill.path(), slice_rows).expect("loads");
            assert_eq!(part.partitions(), partitions, "{split:?}");
            assert_eq!(part.custom_type_occurrences(), [1, 2]);
            assert_eq!(part.dataset.custom_event_types, ["alpha_view", "zeta_view"]);
            assert_eq!(
                whole.dataset.custom_event_types,
                ["alpha_view", "zeta_view"]
            );
            let (a, b) = (
                whole.report.table(Table::Events).expect("events"),
                part.report.table(Table::Events).expect("events"),
            );
            assert_eq!((a.read, a.accepted), (b.read, b.accepted));
            assert_eq!(a.rejects, b.rejects, "the same rows, numbered the same");
            assert_eq!(
                a.rejects.iter().map(|r| r.row).collect::<Vec<_>>(),
                [3, 5, 8, 10]
            );
            let mut events: Vec<Event> = Vec::new();
            for k in 0..part.partitions() {
                let mine = part.events_of(k).expect("events");
                assert!(mine.iter().all(|e| part.partition_of(e.learner) == k));
                assert!(mine.is_sorted_by_key(|e| e.learner), "by learner");
                events.extend(mine);
            }
            assert!(
                events
                    .iter()
                    .all(|e| (e.learner as usize) < part.dataset.learners.len())
            );
            events.sort_by_key(|e| (e.learner, e.ts));
            let mut expected = whole.dataset.events.clone();
            expected.sort_by_key(|e| (e.learner, e.ts));
            // Debug text, because the measures are NaN where absent.
            assert_eq!(format!("{events:?}"), format!("{expected:?}"));
            let first = expected.iter().map(|e| e.ts).min();
            let last = expected.iter().map(|e| e.ts).max();
            assert_eq!(part.event_span, first.zip(last));
        }
    }
}
