//! The prediction log: one JSON line per prediction (time, request id,
//! learner id, model, probability, top factors, suggested action with policy
//! and propensity; never features or events), written by a thread of its own
//! behind a bounded channel. A full channel drops the record and counts it:
//! requests never wait for the disk.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use prometheus_client::metrics::counter::Counter;

use crate::ServeError;

/// The writer side of the prediction log.
pub struct PredictionLog {
    sender: Option<SyncSender<String>>,
    writer: Option<JoinHandle<()>>,
    dropped: Counter,
}

impl PredictionLog {
    /// Opens (appends to) `path`, rotating at `max_bytes` and keeping `keep` old files.
    pub fn open(
        path: &Path,
        max_bytes: u64,
        keep: usize,
        buffer: usize,
        dropped: Counter,
    ) -> Result<Self, ServeError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            churn_core::create_dir_all(dir).map_err(|e| ServeError::Io {
                path: dir.to_owned(),
                source: e,
            })?;
        }
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (sender, receiver) = sync_channel(buffer);
        let mut sink = Sink {
            path: path.to_owned(),
            out: BufWriter::new(file),
            size,
            max_bytes,
            keep,
        };
        let writer = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || sink.run(receiver))
            .map_err(|e| ServeError::Io {
                path: path.to_owned(),
                source: e,
            })?;
        Ok(PredictionLog {
            sender: Some(sender),
            writer: Some(writer),
            dropped,
        })
    }

    /// Queues one record; drops and counts it when the writer is behind.
    pub fn record(&self, line: String) {
        let Some(sender) = &self.sender else {
            return;
        };
        match sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }

    /// Writes what is queued and stops the writer (on shutdown).
    pub fn close(&mut self) {
        self.sender = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for PredictionLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_append(path: &Path) -> Result<File, ServeError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ServeError::Io {
            path: path.to_owned(),
            source: e,
        })
}

struct Sink {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

impl Sink {
    fn run(&mut self, receiver: Receiver<String>) {
        while let Ok(line) = receiver.recv() {
            self.write(&line);
            // Drain what is queued, then flush once.
            while let Ok(line) = receiver.try_recv() {
                self.write(&line);
            }
            if let Err(e) = self.out.flush() {
                tracing::warn!(error = %e, path = %self.path.display(), "prediction log flush failed");
            }
        }
        let _ = self.out.flush();
    }

    fn write(&mut self, line: &str) {
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.max_bytes {
            self.rotate();
        }
        if let Err(e) = writeln!(self.out, "{line}") {
            tracing::warn!(error = %e, path = %self.path.display(), "prediction log write failed");
            return;
        }
        self.size += line.len() as u64 + 1;
    }

    /// `log` → `log.1` → … → `log.<keep>` (the oldest is removed).
    fn rotate(&mut self) {
        let _ = self.out.flush();
        let numbered = |k: usize| PathBuf::from(format!("{}.{k}", self.path.display()));
        let _ = std::fs::remove_file(numbered(self.keep));
        for k in (1..self.keep).rev() {
            let _ = std::fs::rename(numbered(k), numbered(k + 1));
        }
        let _ = std::fs::rename(&self.path, numbered(1));
        match open_append(&self.path) {
            Ok(file) => {
                self.out = BufWriter::new(file);
                self.size = 0;
            }
            Err(e) => tracing::warn!(error = %e, "prediction log rotation failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_written_in_order_and_rotated_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/predictions.jsonl");
        let dropped = Counter::default();
        let mut log = PredictionLog::open(&path, 100, 2, 1000, dropped.clone()).unwrap();
        for i in 0..30 {
            log.record(format!("{{\"i\":{i:02}}}"));
        }
        log.close();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(&path);
        let one = read(&PathBuf::from(format!("{}.1", path.display())));
        let two = read(&PathBuf::from(format!("{}.2", path.display())));
        assert!(
            !PathBuf::from(format!("{}.3", path.display())).exists(),
            "keeps 2"
        );
        // 9 bytes per line: 11 lines fill 99 bytes, the 12th rotates.
        assert_eq!(current.lines().count(), 30 - 22);
        assert_eq!(one.lines().count(), 11);
        assert_eq!(two.lines().count(), 11);
        assert!(two.starts_with("{\"i\":00}") && one.starts_with("{\"i\":11}"));
        assert_eq!(dropped.get(), 0);
    }

    #[test]
    fn a_full_buffer_drops_and_counts_instead_of_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let dropped = Counter::default();
        let log = PredictionLog::open(&dir.path().join("p.jsonl"), 1 << 30, 1, 1, dropped.clone())
            .unwrap();
        for _ in 0..10_000 {
            log.record("x".repeat(1000));
        }
        assert!(
            dropped.get() > 0,
            "a one-slot buffer cannot keep up with 10,000 records"
        );
    }
}
