//! Source rows in batches: each file is cut into runs of whole rows (a few
//! MiB of CSV or JSON lines, or a range of a Parquet file's rows) by one
//! reader, and the rows of a batch are parsed and mapped by whichever thread
//! takes it. Results are merged in the order of the batches, so what an
//! import writes does not depend on the number of threads.
//!
//! Row numbers (a reject's `row`) are counted within each file: the serial
//! driver ([`for_each_row`]) numbers rows as it goes; the parallel one
//! ([`for_each_batch`]) numbers them within the batch and tells the merge how
//! many rows of the file came before it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel};
use std::sync::{Arc, Mutex};

use polars::prelude::*;

use crate::ImportError;
use crate::source::{Format, Header, Joined, Row, RowAt, SourceFiles, open};

/// The bytes of CSV or JSON lines given to one batch.
pub const DEFAULT_BATCH_BYTES: usize = 4 << 20;

/// One file of a source, as the rows of its batches are seen.
pub(crate) struct FileAt<'s> {
    /// The file's place among the source's files.
    index: usize,
    pub(crate) path: PathBuf,
    /// The columns a row has: the file's own, then those a join adds.
    pub(crate) header: Header,
    /// The file's own columns (what its rows hold before a join).
    own: Header,
    join: Option<JoinAt<'s>>,
}

/// How a join extends a row: the key's place and the joined columns added.
struct JoinAt<'s> {
    joined: &'s Joined,
    key: usize,
    /// Indices into `joined.columns` the file does not have itself.
    added: Vec<usize>,
}

impl<'s> FileAt<'s> {
    fn new(
        index: usize,
        path: &Path,
        own: Header,
        join: Option<&'s Joined>,
    ) -> Result<Self, ImportError> {
        let Some(joined) = join else {
            return Ok(FileAt {
                index,
                path: path.to_owned(),
                header: own.clone(),
                own,
                join: None,
            });
        };
        let key = own.position(&joined.key).ok_or_else(|| ImportError::Io {
            path: path.to_owned(),
            message: format!(
                "join: key column {:?} is not there (columns: {})",
                joined.key,
                own.names.join(", ")
            ),
        })?;
        let added: Vec<usize> = (0..joined.columns.len())
            .filter(|&j| own.position(&joined.columns[j]).is_none())
            .collect();
        let mut names = own.names.clone();
        names.extend(added.iter().map(|&j| joined.columns[j].clone()));
        Ok(FileAt {
            index,
            path: path.to_owned(),
            header: Header::new(names),
            own,
            join: Some(JoinAt { joined, key, added }),
        })
    }

    /// The row with the joined columns added (the first joined row of its key).
    fn joined_row(&self, join: &JoinAt<'_>, row: &dyn Row) -> Vec<Option<String>> {
        let found = row
            .get(join.key)
            .and_then(|k| join.joined.rows.get(k.trim()));
        let mut values: Vec<Option<String>> = (0..self.own.names.len())
            .map(|i| row.get(i).map(str::to_owned))
            .collect();
        values.extend(join.added.iter().map(|&j| found.and_then(|r| r[j].clone())));
        values
    }
}

/// What a batch holds.
pub(crate) enum Body {
    /// Whole CSV records (no header).
    Csv { bytes: Vec<u8>, delimiter: u8 },
    /// Whole JSON lines.
    Lines(Vec<u8>),
    /// A range of a Parquet file's rows, as text.
    Frame {
        columns: Arc<Vec<StringChunked>>,
        start: usize,
        len: usize,
    },
}

/// A run of whole rows of one file.
pub(crate) struct Batch<'s> {
    pub(crate) file: Arc<FileAt<'s>>,
    body: Body,
}

/// Why a batch's rows could not be read.
pub(crate) enum BatchError {
    /// The file is malformed at a row (CSV that is not UTF-8, a line that is
    /// not JSON): the whole import stops there, as with an unreadable file.
    Row {
        /// `"row"` or `"line"`.
        unit: &'static str,
        /// 1-based, counted from the rows before the batch given to `rows`.
        at: usize,
        message: String,
    },
    Import(ImportError),
}

impl From<ImportError> for BatchError {
    fn from(e: ImportError) -> Self {
        BatchError::Import(e)
    }
}

impl BatchError {
    /// The error, its row counted from the start of `file` given the rows
    /// of the file before the batch.
    fn located(self, file: &Path, before: usize) -> ImportError {
        match self {
            BatchError::Row { unit, at, message } => ImportError::Io {
                path: file.to_owned(),
                message: format!("{unit} {}: {message}", before + at),
            },
            BatchError::Import(e) => e,
        }
    }
}

impl Batch<'_> {
    /// Calls `each` with every row; a row's number is `before` plus its
    /// place in the batch. Returns how many rows the batch numbers (JSON
    /// lines number blank lines too, as line numbers do).
    pub(crate) fn rows(
        &self,
        before: usize,
        mut each: impl FnMut(&RowAt<'_>, &dyn Row) -> Result<(), ImportError>,
    ) -> Result<usize, BatchError> {
        let file = &*self.file;
        let mut call = |n: usize, row: &dyn Row| {
            let at = RowAt {
                file: &file.path,
                row: before + n,
                header: &file.header,
            };
            match &file.join {
                None => each(&at, row),
                Some(join) => each(&at, &file.joined_row(join, row)),
            }
        };
        let mut n = 0;
        match &self.body {
            Body::Csv { bytes, delimiter } => {
                let mut reader = csv::ReaderBuilder::new()
                    .delimiter(*delimiter)
                    .flexible(true)
                    .has_headers(false)
                    .from_reader(bytes.as_slice());
                let mut record = csv::StringRecord::new();
                loop {
                    match reader.read_record(&mut record) {
                        Ok(true) => {
                            n += 1;
                            call(n, &record)?;
                        }
                        Ok(false) => break,
                        Err(e) => {
                            return Err(BatchError::Row {
                                unit: "row",
                                at: before + n + 1,
                                message: csv_error(&e, &file.own),
                            });
                        }
                    }
                }
            }
            Body::Lines(bytes) => {
                let mut lines = bytes.split(|&b| b == b'\n').peekable();
                while let Some(line) = lines.next() {
                    if line.is_empty() && lines.peek().is_none() {
                        break; // after the last newline
                    }
                    n += 1;
                    let bad = |message: String| BatchError::Row {
                        unit: "line",
                        at: before + n,
                        message,
                    };
                    let line = std::str::from_utf8(line).map_err(|e| bad(e.to_string()))?;
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    if line.trim().is_empty() {
                        continue;
                    }
                    let object: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
                    let values = json_values(&file.own, &object);
                    call(n, &values)?;
                }
            }
            Body::Frame {
                columns,
                start,
                len,
            } => {
                for row in *start..start + len {
                    let values: Vec<Option<String>> = columns
                        .iter()
                        .map(|c| c.get(row).map(str::to_owned))
                        .collect();
                    n += 1;
                    call(n, &values)?;
                }
            }
        }
        Ok(n)
    }
}

/// What is wrong with a CSV record, without the CSV reader's own position
/// (it counts from the batch's start, not the file's).
fn csv_error(error: &csv::Error, header: &Header) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "column {:?} is not UTF-8 (after its first {} bytes)",
            header.names.get(err.field()).map_or("?", String::as_str),
            err.valid_up_to()
        ),
        csv::ErrorKind::Io(e) => e.to_string(),
        _ => error.to_string(),
    }
}

/// An object's values in the header's order (absent and null are missing).
fn json_values(
    header: &Header,
    object: &serde_json::Map<String, serde_json::Value>,
) -> Vec<Option<String>> {
    header
        .names
        .iter()
        .map(|n| match object.get(n) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        })
        .collect()
}

/// Cuts a stream into runs of whole records: CSV (quoted fields may hold
/// newlines) or JSON lines (they may not).
struct RecordSplitter<R> {
    input: R,
    buffer: Vec<u8>,
    /// The CSV delimiter; `None` for JSON lines.
    csv: Option<u8>,
    ended: bool,
}

impl<R: Read> RecordSplitter<R> {
    fn new(input: R, csv: Option<u8>) -> Self {
        RecordSplitter {
            input,
            buffer: Vec::new(),
            csv,
            ended: false,
        }
    }

    /// The next run of whole records of about `size` bytes (more when one
    /// record is longer); `None` at the end.
    fn next(&mut self, size: usize) -> std::io::Result<Option<Vec<u8>>> {
        let mut want = size.max(1);
        loop {
            while !self.ended && self.buffer.len() < want {
                let missing = (want - self.buffer.len()) as u64;
                let read = Read::by_ref(&mut self.input)
                    .take(missing)
                    .read_to_end(&mut self.buffer)?;
                // Short of `missing` only at the end (a stream read past its
                // end may fail: PostgreSQL's COPY does).
                self.ended = (read as u64) < missing;
            }
            if self.buffer.is_empty() {
                return Ok(None);
            }
            if self.ended {
                return Ok(Some(std::mem::take(&mut self.buffer)));
            }
            if let Some(end) = self.last_record_end() {
                let rest = self.buffer[end..].to_vec();
                let mut batch = std::mem::replace(&mut self.buffer, rest);
                batch.truncate(end);
                return Ok(Some(batch));
            }
            want = self.buffer.len() * 2;
        }
    }

    /// Where the last whole record of the buffer ends (the buffer starts at
    /// a record's start).
    fn last_record_end(&self) -> Option<usize> {
        let delimiter = match self.csv {
            Some(d) if memchr::memchr(b'"', &self.buffer).is_some() => d,
            // Without a quote, every newline ends a record.
            _ => return memchr::memrchr(b'\n', &self.buffer).map(|i| i + 1),
        };
        // Quoted fields: let the CSV state machine find where records end.
        let mut reader = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        let mut output = vec![0u8; 1 << 16];
        let mut ends = vec![0usize; 1 << 10];
        let (mut at, mut last) = (0, None);
        loop {
            let (result, read, _, _) =
                reader.read_record(&self.buffer[at..], &mut output, &mut ends);
            at += read;
            match result {
                csv_core::ReadRecordResult::Record => last = Some(at),
                // The fields read are not kept: only where records end.
                csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => {}
                csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::End => {
                    return last;
                }
            }
        }
    }
}

/// Reads every file of `files` (in name order) into batches of about
/// `batch_bytes`, and gives each to `emit` with its file. With `join`, the
/// rows gain the joined source's columns.
fn produce<'s>(
    files: &'s SourceFiles,
    join: Option<&'s Joined>,
    wanted: &[String],
    batch_bytes: usize,
    mut emit: impl FnMut(Batch<'s>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    // A row's own columns: the joined ones are added to it.
    let own_wanted: Vec<String> = match join {
        None => wanted.to_vec(),
        Some(j) => wanted
            .iter()
            .filter(|w| !j.columns.contains(w))
            .cloned()
            .collect(),
    };
    let mut send = |file: &Arc<FileAt<'s>>, body: Body| {
        emit(Batch {
            file: Arc::clone(file),
            body,
        })
    };
    for (index, path) in files.files.iter().enumerate() {
        let read_error = |message: String| ImportError::Io {
            path: path.clone(),
            message,
        };
        match files.format {
            Format::Csv | Format::Tsv => {
                let delimiter = if files.format == Format::Tsv {
                    b'\t'
                } else {
                    b','
                };
                let input = open(path)?;
                csv_batches(
                    input,
                    delimiter,
                    path,
                    batch_bytes,
                    |own| FileAt::new(index, path, own, join),
                    &mut send,
                )?;
            }
            Format::Postgres => {
                let Some((url, query)) = &files.postgres else {
                    return Err(read_error("no query".into()));
                };
                let mut client = postgres::Client::connect(url, postgres::NoTls)
                    .map_err(|e| read_error(format!("cannot connect: {e}")))?;
                // COPY streams the result: rows arrive as they are read, and
                // the whole result is never in memory.
                let copy = format!("COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)");
                let input = client
                    .copy_out(copy.as_str())
                    .map_err(|e| read_error(format!("the query failed: {e}")))?;
                csv_batches(
                    input,
                    b',',
                    path,
                    batch_bytes,
                    |own| FileAt::new(index, path, own, join),
                    &mut send,
                )?;
            }
            Format::Jsonl => {
                let mut splitter = RecordSplitter::new(open(path)?, None);
                let mut file: Option<Arc<FileAt<'s>>> = None;
                // Blank lines before the first object, kept for their numbers.
                let mut leading = Vec::new();
                while let Some(mut bytes) = splitter
                    .next(batch_bytes)
                    .map_err(|e| read_error(e.to_string()))?
                {
                    if file.is_none() {
                        leading.append(&mut bytes);
                        bytes = std::mem::take(&mut leading);
                        // No header: the first object's keys and the wanted
                        // columns, since a key may be absent from some objects.
                        let first = bytes
                            .split(|&b| b == b'\n')
                            .enumerate()
                            .find(|(_, l)| !l.trim_ascii().is_empty());
                        let Some((k, line)) = first else {
                            leading = bytes;
                            continue;
                        };
                        let object: serde_json::Map<String, serde_json::Value> =
                            serde_json::from_slice(line)
                                .map_err(|e| read_error(format!("line {}: {e}", k + 1)))?;
                        let mut names: Vec<String> = object.keys().cloned().collect();
                        for w in &own_wanted {
                            if !names.contains(w) {
                                names.push(w.clone());
                            }
                        }
                        file = Some(Arc::new(FileAt::new(
                            index,
                            path,
                            Header::new(names),
                            join,
                        )?));
                    }
                    if let Some(file) = &file {
                        send(file, Body::Lines(bytes))?;
                    }
                }
            }
            Format::Parquet => {
                let input = File::open(path).map_err(|e| read_error(e.to_string()))?;
                let frame = ParquetReader::new(input)
                    .finish()
                    .map_err(|e| read_error(e.to_string()))?;
                let own = Header::new(
                    frame
                        .get_column_names()
                        .iter()
                        .map(|n| n.to_string())
                        .collect(),
                );
                let columns: Vec<StringChunked> = frame
                    .columns()
                    .iter()
                    .map(|c| {
                        let text = match c.dtype() {
                            DataType::Datetime(_, _) | DataType::Date => c
                                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
                                .and_then(|c| c.cast(&DataType::Int64))
                                .and_then(|c| c.cast(&DataType::String)),
                            _ => c.cast(&DataType::String),
                        };
                        text.and_then(|c| c.str().cloned())
                            .map_err(|e| read_error(format!("column {}: {e}", c.name())))
                    })
                    .collect::<Result<_, _>>()?;
                let file = Arc::new(FileAt::new(index, path, own, join)?);
                let columns = Arc::new(columns);
                let per_batch = (batch_bytes / 64).max(1);
                for start in (0..frame.height()).step_by(per_batch) {
                    let len = per_batch.min(frame.height() - start);
                    send(
                        &file,
                        Body::Frame {
                            columns: Arc::clone(&columns),
                            start,
                            len,
                        },
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// The batches of one CSV stream: its header (the first record) makes the
/// file's columns.
fn csv_batches<'s>(
    input: impl Read,
    delimiter: u8,
    path: &Path,
    batch_bytes: usize,
    file_at: impl FnOnce(Header) -> Result<FileAt<'s>, ImportError>,
    send: &mut impl FnMut(&Arc<FileAt<'s>>, Body) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let read_error = |message: String| ImportError::Io {
        path: path.to_owned(),
        message,
    };
    let mut splitter = RecordSplitter::new(input, Some(delimiter));
    let first = splitter
        .next(batch_bytes)
        .map_err(|e| read_error(e.to_string()))?
        .unwrap_or_default();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(first.as_slice());
    let names = reader
        .headers()
        .map_err(|e| read_error(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let body_start = (reader.position().byte() as usize).min(first.len());
    let file = Arc::new(file_at(Header::new(names))?);
    let mut bytes = first[body_start..].to_vec();
    loop {
        if !bytes.is_empty() {
            send(&file, Body::Csv { bytes, delimiter })?;
        }
        match splitter
            .next(batch_bytes)
            .map_err(|e| read_error(e.to_string()))?
        {
            Some(next) => bytes = next,
            None => return Ok(()),
        }
    }
}

/// Calls `start` with each file's header (to resolve columns), then `each`
/// with every row of the file, in order, on this thread.
pub(crate) fn for_each_row<S>(
    files: &SourceFiles,
    wanted: &[String],
    start: impl FnMut(&Path, &Header) -> Result<S, ImportError>,
    each: impl FnMut(&mut S, &RowAt<'_>, &dyn Row) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    for_each_row_joined(files, files.joined.as_ref(), wanted, start, each)
}

/// [`for_each_row`] with the rows joined to `join` (`None`: a source's own
/// columns only, as a join's other side is read).
pub(crate) fn for_each_row_joined<'s, S>(
    files: &'s SourceFiles,
    join: Option<&'s Joined>,
    wanted: &[String],
    mut start: impl FnMut(&Path, &Header) -> Result<S, ImportError>,
    mut each: impl FnMut(&mut S, &RowAt<'_>, &dyn Row) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut current: Option<(usize, S)> = None;
    let mut before = 0;
    produce(files, join, wanted, DEFAULT_BATCH_BYTES, |batch| {
        let file = &batch.file;
        if current.as_ref().map(|(index, _)| *index) != Some(file.index) {
            before = 0;
            current = Some((file.index, start(&file.path, &file.header)?));
        }
        if let Some((_, state)) = current.as_mut() {
            before += batch
                .rows(before, |at, row| each(state, at, row))
                .map_err(|e| e.located(&file.path, 0))?;
        }
        Ok(())
    })
}

/// Where a batch's rows are in their file, for the merge.
pub(crate) struct Placed {
    /// The rows of the same file in the batches before.
    pub(crate) rows_before: usize,
}

/// The rows of `files` in batches made by `make` on every thread of the
/// pool, given to `merge` in the order of the batches (so the result is the
/// same at any thread count). `start` makes each file's state from its
/// header, as in [`for_each_row`]; `make` numbers rows within its batch
/// (pass 0 to [`Batch::rows`]) and returns its result with the count
/// `Batch::rows` gave, and `merge` is told how many came before.
pub(crate) fn for_each_batch<'s, S, B>(
    files: &'s SourceFiles,
    wanted: &[String],
    batch_bytes: usize,
    mut start: impl FnMut(&Path, &Header) -> Result<S, ImportError> + Send,
    make: impl Fn(&S, &Batch<'s>) -> Result<(B, usize), BatchError> + Sync,
    mut merge: impl FnMut(B, &Placed) -> Result<(), ImportError>,
) -> Result<(), ImportError>
where
    S: Send + Sync,
    B: Send,
{
    struct Job<'s, S> {
        seq: usize,
        state: Arc<S>,
        batch: Batch<'s>,
    }
    type Done<'s, B> = (usize, Arc<FileAt<'s>>, Result<(B, usize), BatchError>);
    let workers = rayon::current_num_threads().max(1);
    let (jobs, job_queue) = sync_channel::<Job<'s, S>>(workers * 2);
    let job_queue = Mutex::new(job_queue);
    let (done, finished) = channel::<Done<'s, B>>();
    let stop = AtomicBool::new(false);
    let (make, stop_reading) = (&make, &stop);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let mut seq = 0;
            let mut current: Option<(usize, Arc<S>)> = None;
            produce(files, files.joined.as_ref(), wanted, batch_bytes, |batch| {
                let state = match &current {
                    Some((index, state)) if *index == batch.file.index => Arc::clone(state),
                    _ => {
                        let state = Arc::new(start(&batch.file.path, &batch.file.header)?);
                        current = Some((batch.file.index, Arc::clone(&state)));
                        state
                    }
                };
                // The merge stopped at an error of its own: read no further.
                let stopped = || ImportError::Source {
                    source_name: String::new(),
                    message: "stopped".into(),
                };
                if stop_reading.load(Ordering::Relaxed) {
                    return Err(stopped());
                }
                seq += 1;
                jobs.send(Job {
                    seq: seq - 1,
                    state,
                    batch,
                })
                .map_err(|_| stopped())
            })
        });
        for _ in 0..workers {
            let done = done.clone();
            let job_queue = &job_queue;
            scope.spawn(move || {
                loop {
                    let job = match job_queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => break,
                    };
                    let Ok(job) = job else { break };
                    let made = make(&job.state, &job.batch);
                    if done
                        .send((job.seq, Arc::clone(&job.batch.file), made))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        drop(done);
        let mut waiting = BTreeMap::new();
        let (mut next, mut rows_before, mut file_index) = (0, 0, None);
        let mut failed = None;
        'merge: for finished_batch in &finished {
            waiting.insert(finished_batch.0, (finished_batch.1, finished_batch.2));
            while let Some((file, made)) = waiting.remove(&next) {
                next += 1;
                if file_index != Some(file.index) {
                    (file_index, rows_before) = (Some(file.index), 0);
                }
                let result = made
                    .map_err(|e| e.located(&file.path, rows_before))
                    .and_then(|(b, rows)| {
                        let placed = Placed { rows_before };
                        rows_before += rows;
                        merge(b, &placed)
                    });
                if let Err(e) = result {
                    failed = Some(e);
                    break 'merge;
                }
            }
        }
        drop(finished);
        if failed.is_some() {
            // Unblock the reader: it sees `stop` at its next batch.
            stop.store(true, Ordering::Relaxed);
            while let Ok(queue) = job_queue.lock() {
                if queue.recv().is_err() {
                    break;
                }
            }
        }
        let produced = producer.join().unwrap_or_else(|_| {
            Err(ImportError::Source {
                source_name: String::new(),
                message: "the reader stopped unexpectedly".into(),
            })
        });
        match failed {
            Some(e) => Err(e),
            None => produced,
        }
    })
}
