//! Rows are read in batches by a pool of threads and merged in order: what
//! an import writes must not depend on the batch size or the thread count,
//! including rows that span a batch's edge (quoted newlines, CRLF), the
//! numbering of rejected rows, and where a malformed file stops the import.

use std::path::{Path, PathBuf};

use churn_import::{ImportSettings, Mapping, import_with};
use polars::prelude::*;

/// An events CSV that exercises the cutting of batches: a byte-order mark,
/// CRLF endings, quoted fields holding newlines, commas and quotes, blank
/// lines, and bad rows that become rejects.
fn tricky_csv(rows: usize) -> String {
    let mut text = String::from("\u{feff}\"user\",day,kind,n,note\r\n");
    for i in 0..rows {
        let note = match i % 5 {
            0 => "\"a, b\"".to_owned(),
            1 => format!("\"line {i}\nnext \"\"quoted\"\" line\""),
            2 => "plain".to_owned(),
            3 => String::new(),
            _ => "\"\"".to_owned(),
        };
        let day = if i % 17 == 5 {
            "not a day".to_owned()
        } else {
            format!("2026-01-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24)
        };
        let kind = ["login", "\"video_watch\"", "forum_post", "oulad.resource"][i % 4];
        let n = if i % 23 == 7 {
            "0".to_owned()
        } else {
            (1 + i % 3).to_string()
        };
        text.push_str(&format!("\"u{}\",{day},{kind},{n},{note}\r\n", i % 37));
        if i % 29 == 3 {
            text.push_str("\r\n");
        }
    }
    text
}

/// The same kind of events as JSON lines, with blank lines (some before the
/// first object, which gives the columns) and bad rows.
fn json_lines(rows: usize) -> String {
    let mut text = String::from("\n \n\n");
    for i in 0..rows {
        if i % 13 == 4 {
            text.push('\n');
        }
        let ts = if i % 11 == 2 {
            serde_json::Value::Null
        } else {
            serde_json::Value::from(1_767_225_600_000i64 + i as i64 * 3_600_000)
        };
        let line = serde_json::json!({"who": format!("j{}", i % 19), "at": ts, "what": "login", "seconds": i % 7});
        text.push_str(&format!("{line}\n"));
    }
    text
}

fn write_sources(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("events.csv"), tricky_csv(400)).expect("csv");
    std::fs::write(dir.join("more.jsonl"), json_lines(300)).expect("jsonl");
    let mut profiles = df!(
        "who" => (0..19).map(|i| format!("j{i}")).collect::<Vec<_>>(),
        "plan" => (0..19).map(|i| if i % 2 == 0 { "free" } else { "pro" }).collect::<Vec<_>>(),
    )
    .expect("frame");
    let file = std::fs::File::create(dir.join("profiles.parquet")).expect("create");
    ParquetWriter::new(file)
        .finish(&mut profiles)
        .expect("parquet");
    let mapping = dir.join("mapping.toml");
    std::fs::write(
        &mapping,
        r#"
[sources.events]
path = "events.csv"
[sources.more]
path = "more.jsonl"
join = { source = "profiles", key = "who" }
[sources.profiles]
path = "profiles.parquet"

[learners]
from_events = true
plan = { value = "unknown" }
acquisition_channel = { value = "unknown" }

[[events]]
source = "events"
learner_id = { column = "user" }
ts = { column = "day" }
event_type = { column = "kind" }
count = { column = "n" }

[[events]]
source = "more"
learner_id = { column = "who" }
ts = { column = "at", format = "epoch_ms" }
event_type = { column = "what" }
duration_s = { column = "seconds" }
filter = [{ column = "plan", equals = "pro" }]
"#,
    )
    .expect("mapping");
    mapping
}

/// Every file an import wrote: Parquet as its rows, the rest as bytes.
fn written(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = glob::glob(&format!("{}/**/*", dir.display()))
        .expect("glob")
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let name = p.strip_prefix(dir).expect("inside").display().to_string();
            let content = if name.ends_with(".parquet") {
                let frame = ParquetReader::new(std::fs::File::open(p).expect("open"))
                    .finish()
                    .expect("parquet");
                format!("{:?}\n{}", frame.schema(), frame_text(&frame))
            } else {
                std::fs::read_to_string(p).expect("text")
            };
            (name, content)
        })
        .collect()
}

fn frame_text(frame: &DataFrame) -> String {
    let mut text = String::new();
    for i in 0..frame.height() {
        for c in frame.columns() {
            text.push_str(&format!("{:?}|", c.get(i).expect("value")));
        }
        text.push('\n');
    }
    text
}

fn import_in(
    mapping: &Mapping,
    out: &Path,
    batch_bytes: usize,
    threads: usize,
) -> Result<churn_import::ImportReport, churn_import::ImportError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    pool.install(|| import_with(mapping, out, &ImportSettings { batch_bytes }))
}

#[test]
fn any_batch_size_and_thread_count_writes_the_same_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mapping = Mapping::read(&write_sources(dir.path())).expect("mapping");
    let reference_dir = dir.path().join("reference");
    let reference = import_in(&mapping, &reference_dir, 1 << 20, 1).expect("imports");
    let csv = &reference.sections[0];
    assert_eq!(csv.read, 400, "{csv:?}");
    assert!(csv.rejected > 30 && csv.reconciles(), "{csv:?}");
    let jsonl = &reference.sections[1];
    assert_eq!(jsonl.read, 300, "{jsonl:?}");
    assert!(jsonl.filtered > 0 && jsonl.rejected > 0 && jsonl.reconciles());
    let expected = written(&reference_dir);
    // A quoted newline was read as part of its field, not as a row's end.
    let rejects = &expected
        .iter()
        .find(|(name, _)| name == "rejects/events-0.csv")
        .expect("rejects")
        .1;
    assert!(rejects.contains(r"line 56\nnext"), "{rejects}");
    for (batch_bytes, threads) in [(1, 1), (7, 3), (64, 2), (1000, 3), (1 << 20, 3)] {
        let out = dir.path().join(format!("out-{batch_bytes}-{threads}"));
        let report = import_in(&mapping, &out, batch_bytes, threads).expect("imports");
        assert_eq!(
            serde_json::to_string(&report).expect("json"),
            serde_json::to_string(&reference).expect("json"),
            "batches of {batch_bytes} bytes on {threads} threads"
        );
        assert_eq!(
            written(&out),
            expected,
            "batches of {batch_bytes} bytes on {threads} threads"
        );
    }
    // The same batches on any number of threads: the same bytes.
    let bytes = |out: &Path| std::fs::read(out.join("events.parquet")).expect("events");
    let one = dir.path().join("one-thread");
    import_in(&mapping, &one, 64, 1).expect("imports");
    assert_eq!(bytes(&one), bytes(&dir.path().join("out-64-2")));
}

#[test]
fn a_malformed_row_stops_the_import_at_its_row_whatever_the_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mapping_path = write_sources(dir.path());
    // Data row 351 of the CSV is not UTF-8 (the header starts with `"u` too).
    let mut csv = tricky_csv(400).into_bytes();
    let text = String::from_utf8(csv.clone()).expect("utf8");
    let (row_351, _) = text.match_indices("\"u").nth(351).expect("a row");
    csv[row_351 + 1] = 0xff;
    std::fs::write(dir.path().join("events.csv"), &csv).expect("csv");
    let mapping = Mapping::read(&mapping_path).expect("mapping");
    let mut messages = Vec::new();
    for (batch_bytes, threads) in [(1 << 20, 1), (50, 3), (3, 2)] {
        let out = dir.path().join(format!("out-{batch_bytes}"));
        let error = import_in(&mapping, &out, batch_bytes, threads)
            .expect_err("a row that is not UTF-8 stops the import");
        messages.push(error.to_string());
        let left: Vec<_> = std::fs::read_dir(&out)
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "nothing is left behind: {left:?}");
    }
    assert!(messages[0].contains("events.csv"), "{}", messages[0]);
    assert!(
        messages[0].contains("row 351: column \"user\" is not UTF-8"),
        "{}",
        messages[0]
    );
    assert!(messages.iter().all(|m| m == &messages[0]), "{messages:?}");
}
