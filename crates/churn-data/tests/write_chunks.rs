//! `DatasetWriter`: a data directory written chunk by chunk is the one
//! written whole, and a column a late chunk needs is an error, not a loss.

use std::path::{Path, PathBuf};

use churn_core::{Dataset, parse_timestamp};
use churn_data::{DataError, DatasetWriter, Format, LoadOptions, load_dir, write_dataset};

fn sample() -> Dataset {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let options = LoadOptions {
        now: parse_timestamp("2026-07-01T00:00:00Z").expect("valid"),
    };
    load_dir(&dir, &options).expect("the sample loads").dataset
}

/// The dataset's rows of learners `range` (events and assignments are in
/// learner order in the sample).
fn rows_of(
    dataset: &Dataset,
    range: std::ops::Range<u32>,
) -> (Vec<churn_core::Event>, Vec<churn_core::Assignment>) {
    let events = dataset
        .events
        .iter()
        .filter(|e| range.contains(&e.learner))
        .copied()
        .collect();
    let assignments = dataset
        .assignments
        .iter()
        .filter(|a| range.contains(&a.learner))
        .cloned()
        .collect();
    (events, assignments)
}

fn write_in_chunks(
    dataset: &Dataset,
    dir: &Path,
    format: Format,
    size: usize,
) -> Result<(), DataError> {
    let mut writer = DatasetWriter::create(dir, format, dataset)?;
    for (k, learners) in dataset.learners.chunks(size).enumerate() {
        let first = (k * size) as u32;
        let (events, assignments) = rows_of(dataset, first..first + learners.len() as u32);
        writer.write_chunk(first, learners, &events, &assignments)?;
    }
    writer.finish()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let path = e.expect("entry").path();
            (
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                std::fs::read(&path).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_dataset_written_in_chunks_reads_back_as_the_dataset_written_whole() {
    let dataset = sample();
    let options = LoadOptions {
        now: parse_timestamp("2026-07-01T00:00:00Z").expect("valid"),
    };
    for format in [Format::Parquet, Format::Csv] {
        let whole = tempfile::tempdir().expect("tempdir");
        write_dataset(&dataset, whole.path(), format).expect("written whole");
        let one_chunk = tempfile::tempdir().expect("tempdir");
        write_in_chunks(&dataset, one_chunk.path(), format, dataset.learners.len())
            .expect("one chunk");
        assert_eq!(
            files(one_chunk.path()),
            files(whole.path()),
            "one chunk is the whole, byte for byte"
        );
        let expected = load_dir(whole.path(), &options).expect("loads");
        for size in [700, 1_999] {
            let chunked = tempfile::tempdir().expect("tempdir");
            write_in_chunks(&dataset, chunked.path(), format, size).expect("chunks");
            let loaded = load_dir(chunked.path(), &options).expect("loads");
            assert_eq!(loaded.report.total_rejected(), 0);
            assert_eq!(loaded.dataset.learners, expected.dataset.learners);
            assert_eq!(loaded.dataset.assignments, expected.dataset.assignments);
            assert_eq!(loaded.dataset.courses, expected.dataset.courses);
            // Debug text: measures are NaN where absent.
            assert_eq!(
                format!("{:?}", loaded.dataset.events),
                format!("{:?}", expected.dataset.events),
                "{format:?} in chunks of {size}"
            );
        }
    }
}

#[test]
fn a_column_only_a_later_chunk_needs_is_an_error_and_leaves_no_file() {
    let mut dataset = sample();
    let dir = tempfile::tempdir().expect("tempdir");
    let late = dataset
        .events
        .iter()
        .position(|e| e.learner >= 100)
        .expect("events after learner 100");
    dataset.events[late].count = 3;
    let error =
        write_in_chunks(&dataset, dir.path(), Format::Parquet, 100).expect_err("count is late");
    let message = error.to_string();
    assert!(
        message.contains("events.parquet") && message.contains("count"),
        "{message}"
    );
    let left: Vec<String> = files(dir.path())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(left, ["courses.parquet"], "no partial table is left");

    // An event naming a learner outside its chunk is refused, with the index.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer = DatasetWriter::create(dir.path(), Format::Csv, &dataset).expect("created");
    let (events, _) = rows_of(&dataset, 0..20);
    let error = writer
        .write_chunk(0, &dataset.learners[..10], &events, &[])
        .expect_err("events of learners 10..20");
    assert!(
        error
            .to_string()
            .contains("learner index 10 in a chunk of learners 0..10"),
        "{error}"
    );
}
