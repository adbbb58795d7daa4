//! Accepted events spilled to disk by bucket of learners, so that a file
//! larger than memory is read once and each bucket computed on its own.
//!
//! A learner's events all go to bucket `learner % buckets`, in file order.
//! Records are compact and little-endian: the fixed fields, then a byte
//! saying which of the five measures are present, then those measures (most
//! events have none). The spill lives in a temporary directory removed when
//! [`SpilledEvents`] is dropped.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use churn_core::{Event, EventKind, EventType};

use crate::DataError;

/// Bytes buffered per bucket before a write.
const BUFFER_BYTES: usize = 1 << 16;

/// Buckets being written during the one pass over the events file.
pub(crate) struct SpillWriter {
    dir: tempfile::TempDir,
    files: Vec<File>,
    buffers: Vec<Vec<u8>>,
    counts: Vec<u64>,
}

/// The buckets, complete.
pub(crate) struct SpilledEvents {
    dir: tempfile::TempDir,
    counts: Vec<u64>,
    bytes: Vec<u64>,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_owned(),
        source,
    }
}

fn bucket_path(dir: &Path, bucket: usize) -> PathBuf {
    dir.join(format!("bucket-{bucket:04}.events"))
}

impl SpillWriter {
    /// `buckets` empty bucket files in a new temporary directory under `parent`.
    pub(crate) fn create(parent: &Path, buckets: usize) -> Result<SpillWriter, DataError> {
        churn_core::create_dir_all(parent).map_err(io_error(parent))?;
        let dir = tempfile::Builder::new()
            .prefix(".churn-spill-")
            .tempdir_in(parent)
            .map_err(io_error(parent))?;
        let files = (0..buckets.max(1))
            .map(|b| {
                let path = bucket_path(dir.path(), b);
                File::create(&path).map_err(io_error(&path))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SpillWriter {
            buffers: vec![Vec::with_capacity(BUFFER_BYTES); files.len()],
            counts: vec![0; files.len()],
            files,
            dir,
        })
    }

    /// Appends events to their learners' buckets.
    pub(crate) fn push(&mut self, events: &[Event]) -> Result<(), DataError> {
        let buckets = self.files.len() as u32;
        for e in events {
            let bucket = (e.learner % buckets) as usize;
            let buffer = &mut self.buffers[bucket];
            encode(e, buffer);
            self.counts[bucket] += 1;
            if buffer.len() >= BUFFER_BYTES {
                self.flush(bucket)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, bucket: usize) -> Result<(), DataError> {
        let buffer = &mut self.buffers[bucket];
        self.files[bucket]
            .write_all(buffer)
            .map_err(|e| io_error(&bucket_path(self.dir.path(), bucket))(e))?;
        buffer.clear();
        Ok(())
    }

    /// Writes what is buffered; the buckets can then be read.
    pub(crate) fn finish(mut self) -> Result<SpilledEvents, DataError> {
        for bucket in 0..self.files.len() {
            self.flush(bucket)?;
        }
        let bytes = self
            .files
            .iter()
            .enumerate()
            .map(|(b, f)| {
                f.metadata()
                    .map(|m| m.len())
                    .map_err(|e| io_error(&bucket_path(self.dir.path(), b))(e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SpilledEvents {
            dir: self.dir,
            counts: self.counts,
            bytes,
        })
    }
}

impl SpilledEvents {
    /// Events in each bucket.
    pub(crate) fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Spilled bytes, all buckets together.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// The events of `buckets`, grouped by learner in index order (a
    /// counting sort: the events of a partition are placed, not sorted),
    /// each learner's in file order; custom kinds renamed through `rename`
    /// (old index → new). `learners` bounds the learner indexes.
    pub(crate) fn read(
        &self,
        buckets: std::ops::Range<usize>,
        learners: usize,
        rename: &[u16],
    ) -> Result<Vec<Event>, DataError> {
        let files = buckets
            .map(|bucket| {
                let path = bucket_path(self.dir.path(), bucket);
                std::fs::read(&path)
                    .map_err(io_error(&path))
                    .map(|bytes| (path, bytes))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let torn = |path: &Path| DataError::Read {
            file: path.to_owned(),
            message: "spilled events end in the middle of a record or name an unknown learner"
                .into(),
        };
        // Where each learner's events start.
        let mut starts = vec![0usize; learners + 1];
        for (path, bytes) in &files {
            let mut rest = bytes.as_slice();
            while !rest.is_empty() {
                let (learner, tail) = skip(rest).ok_or_else(|| torn(path))?;
                let slot = starts
                    .get_mut(learner as usize + 1)
                    .ok_or_else(|| torn(path))?;
                *slot += 1;
                rest = tail;
            }
        }
        for l in 1..starts.len() {
            starts[l] += starts[l - 1];
        }
        let total = starts[learners];
        let mut events = vec![Event::new(0, 0, EventType::Login); total];
        let mut next = starts;
        for (path, bytes) in &files {
            let mut rest = bytes.as_slice();
            while !rest.is_empty() {
                let (event, tail) = decode(rest).ok_or_else(|| torn(path))?;
                let at = &mut next[event.learner as usize];
                events[*at] = event;
                *at += 1;
                rest = tail;
            }
        }
        crate::validate::rename_custom(&mut events, rename);
        Ok(events)
    }
}

const KIND_KNOWN: u8 = 0;
const KIND_CUSTOM: u8 = 1;
const KIND_CUSTOM_ACTIVITY: u8 = 2;

/// Appends one record: ts, learner, course, kind (tag, known code, custom
/// index), count, the present-measures mask, the present measures.
fn encode(e: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.ts.to_le_bytes());
    out.extend_from_slice(&e.learner.to_le_bytes());
    out.extend_from_slice(&e.course.to_le_bytes());
    let (tag, code, index) = match e.event_type {
        EventKind::Known(t) => (KIND_KNOWN, t.code(), 0u16),
        EventKind::Custom {
            index,
            activity: false,
        } => (KIND_CUSTOM, 0, index),
        EventKind::Custom {
            index,
            activity: true,
        } => (KIND_CUSTOM_ACTIVITY, 0, index),
    };
    out.push(tag);
    out.push(code);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&e.count.to_le_bytes());
    let measures = [e.duration_s, e.score, e.amount, e.latency_ms, e.stalls];
    let mask = measures
        .iter()
        .enumerate()
        .fold(0u8, |m, (i, v)| if v.is_nan() { m } else { m | (1 << i) });
    out.push(mask);
    for v in measures.iter().filter(|v| !v.is_nan()) {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Size of a record's fixed part.
const FIXED_BYTES: usize = 8 + 4 + 4 + 4 + 4 + 1;

/// The learner of the record `bytes` starts with, and what follows it;
/// `None` if `bytes` ends inside it.
fn skip(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mask = *bytes.get(FIXED_BYTES - 1)?;
    let learner = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    let len = FIXED_BYTES + 8 * mask.count_ones() as usize;
    Some((learner, bytes.get(len..)?))
}

/// Reads one record; `None` if `bytes` ends inside it or is not a record.
fn decode(bytes: &[u8]) -> Option<(Event, &[u8])> {
    let (fixed, mut rest) = bytes.split_at_checked(FIXED_BYTES)?;
    let le4 = |at: usize| fixed[at..at + 4].try_into().ok();
    let ts = i64::from_le_bytes(fixed[0..8].try_into().ok()?);
    let learner = u32::from_le_bytes(le4(8)?);
    let course = u32::from_le_bytes(le4(12)?);
    let index = u16::from_le_bytes(fixed[18..20].try_into().ok()?);
    let event_type = match fixed[16] {
        KIND_KNOWN => EventKind::Known(*EventType::ALL.get(usize::from(fixed[17]))?),
        KIND_CUSTOM => EventKind::Custom {
            index,
            activity: false,
        },
        KIND_CUSTOM_ACTIVITY => EventKind::Custom {
            index,
            activity: true,
        },
        _ => return None,
    };
    let count = u32::from_le_bytes(le4(20)?);
    let mask = fixed[24];
    let mut measures = [f64::NAN; 5];
    for (i, slot) in measures.iter_mut().enumerate() {
        if mask & (1 << i) != 0 {
            let (value, tail) = rest.split_at_checked(8)?;
            *slot = f64::from_le_bytes(value.try_into().ok()?);
            rest = tail;
        }
    }
    let [duration_s, score, amount, latency_ms, stalls] = measures;
    Some((
        Event {
            ts,
            learner,
            course,
            event_type,
            count,
            duration_s,
            score,
            amount,
            latency_ms,
            stalls,
        },
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn measure() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(f64::NAN),
            any::<f64>().prop_filter("not NaN", |v| !v.is_nan())
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        let kind = prop_oneof![
            (0..EventType::ALL.len()).prop_map(|i| EventKind::Known(EventType::ALL[i])),
            (any::<u16>(), any::<bool>())
                .prop_map(|(index, activity)| EventKind::Custom { index, activity }),
        ];
        (
            any::<i64>(),
            any::<u32>(),
            any::<u32>(),
            kind,
            any::<u32>(),
            [measure(), measure(), measure(), measure(), measure()],
        )
            .prop_map(|(ts, learner, course, event_type, count, m)| Event {
                ts,
                learner,
                course,
                event_type,
                count,
                duration_s: m[0],
                score: m[1],
                amount: m[2],
                latency_ms: m[3],
                stalls: m[4],
            })
    }

    proptest! {
        #[test]
        fn a_record_reads_back_as_the_event_it_was(events in proptest::collection::vec(event(), 0..40)) {
            let mut bytes = Vec::new();
            for e in &events {
                encode(e, &mut bytes);
            }
            let mut rest = bytes.as_slice();
            let mut back = Vec::new();
            while !rest.is_empty() {
                let (e, tail) = decode(rest).expect("a whole record");
                back.push(e);
                rest = tail;
            }
            // Debug text: NaN is absent and equal to itself there.
            prop_assert_eq!(format!("{back:?}"), format!("{events:?}"));
            if let Some(cut) = bytes.len().checked_sub(1) {
                let mut rest = &bytes[..cut];
                let mut whole = 0;
                while let Some((_, tail)) = decode(rest) {
                    whole += 1;
                    rest = tail;
                }
                prop_assert!(whole < events.len(), "a cut record is not read");
            }
        }
    }
}
