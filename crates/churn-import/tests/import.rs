//! `churn_import::import` on the committed examples and on sources written
//! here (Parquet, zstd CSV, TSV): counts that reconcile, rejects with their
//! rows and values, the contract directory read back by `churn_data`, and
//! mapping mistakes named with their key, line and column.

use std::io::Write;
use std::path::{Path, PathBuf};

use churn_core::{DAY_MS, EventType, parse_timestamp};
use churn_import::{ImportReport, Mapping, import};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .join("mapping.toml")
}

fn run(mapping: &Path, out: &Path) -> ImportReport {
    let mapping = Mapping::read(mapping).expect("the mapping reads");
    import(&mapping, out).expect("imports")
}

fn load(dir: &Path) -> churn_data::Loaded {
    let now = parse_timestamp("2026-12-31T00:00:00Z").expect("time");
    churn_data::load_dir(dir, &churn_data::LoadOptions { now }).expect("the output loads")
}

#[test]
fn the_purchase_log_example_imports_with_its_two_bad_rows_rejected() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = run(&example("purchases"), out.path());
    for s in &report.sections {
        assert!(s.reconciles(), "{s:?}");
    }
    let by_section = |name: &str| {
        report
            .sections
            .iter()
            .find(|s| s.section == name)
            .unwrap_or_else(|| panic!("section {name}"))
    };
    assert_eq!(
        (by_section("learners").read, by_section("learners").rejected),
        (40, 0)
    );
    let purchases = by_section("events[0]");
    assert_eq!(
        (purchases.read, purchases.imported, purchases.rejected),
        (101, 99, 2)
    );
    assert_eq!(
        by_section("events[1]").files.len(),
        2,
        "the glob found both gzipped files"
    );
    assert_eq!(
        report.custom_event_types.keys().collect::<Vec<_>>(),
        ["video_play"]
    );

    let rejects =
        std::fs::read_to_string(out.path().join("rejects/events-0.csv")).expect("rejects");
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines.len(), 3, "{rejects}");
    assert!(
        lines[1].contains(",100,ts,") && lines[1].contains("31/02/2026"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(",101,learner_id,learner_id is empty"),
        "{}",
        lines[2]
    );

    // The result is a contract directory every command reads, with no reject.
    let loaded = load(out.path());
    assert_eq!(loaded.report.total_rejected(), 0);
    assert_eq!(
        loaded.contract.label,
        churn_core::LabelDefinition::Cancellation
    );
    assert!(loaded.contract.is_activity("video_play"));
    let d = &loaded.dataset;
    assert_eq!(d.learners.len(), 40);
    assert_eq!(d.events.len(), 99 + 1172 + 34);
    assert!(
        d.learners
            .iter()
            .any(|l| l.plan == "Pro Annual" && l.device.as_deref() == Some("tablet"))
    );
    let payments: Vec<_> = d
        .events
        .iter()
        .filter(|e| e.event_type == EventType::Payment)
        .collect();
    assert_eq!(payments.len(), 99);
    assert!(payments.iter().all(|e| e.amount == 9.99));
    // "open" was mapped to login; "video_play" kept as a custom activity type.
    let logins = d
        .events
        .iter()
        .filter(|e| e.event_type == EventType::Login)
        .count();
    let custom: Vec<_> = d
        .events
        .iter()
        .filter(|e| e.event_type.known().is_none())
        .collect();
    assert_eq!(logins + custom.len(), 1172);
    assert!(
        custom
            .iter()
            .all(|e| e.event_type.is_activity() && e.duration_s > 0.0)
    );
    // Times: epoch seconds, a day-first strftime, epoch ms, a date.
    let u000 = &d.learners[0];
    assert_eq!(u000.id, "u000");
    let first_line = std::fs::read_to_string(example("purchases").with_file_name("users.csv"))
        .expect("users")
        .lines()
        .nth(1)
        .expect("a row")
        .to_owned();
    let created: i64 = first_line
        .split(',')
        .nth(1)
        .expect("created")
        .parse()
        .expect("s");
    assert_eq!(u000.signup_at, created * 1000);
}

#[test]
fn the_daily_counts_example_becomes_one_event_per_non_zero_cell() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = run(&example("daily-counts"), out.path());
    let text =
        std::fs::read_to_string(example("daily-counts").with_file_name("daily.csv")).expect("csv");
    let (mut rows, mut cells, mut total) = (0, 0, 0u64);
    for line in text.lines().skip(1) {
        rows += 1;
        for v in line.split(',').skip(2) {
            let n: u64 = v.parse().expect("count");
            if n > 0 {
                cells += 1;
                total += n;
            }
        }
    }
    assert_eq!(report.sections[0].read, rows);
    assert_eq!(report.sections[0].rows_written, cells);
    let loaded = load(out.path());
    assert_eq!(loaded.report.total_rejected(), 0);
    let d = &loaded.dataset;
    assert_eq!(d.events.len(), cells);
    assert_eq!(
        d.events.iter().map(|e| u64::from(e.count)).sum::<u64>(),
        total
    );
    // Learners made from the events: signed up at their first day.
    let users: std::collections::BTreeSet<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().expect("user"))
        .collect();
    assert_eq!(d.learners.len(), users.len());
    for (i, l) in d.learners.iter().enumerate() {
        let first = d
            .events
            .iter()
            .filter(|e| e.learner as usize == i)
            .map(|e| e.ts)
            .min();
        assert_eq!(Some(l.signup_at), first, "{}", l.id);
        assert_eq!(l.plan, "unknown");
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

#[test]
fn parquet_zstd_tsv_lookups_days_and_filters() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Students as Parquet, with a presentation code whose start date is mapped.
    let mut students = df!(
        "module" => ["AAA", "AAA", "BBB", "BBB", "CCC"],
        "presentation" => ["2013J", "2013J", "2014B", "2014B", "2014B"],
        "student" => [11i64, 12, 11, 13, 99],
        "registered" => [-10i64, -5, -5, 3, 0],
        "region" => ["North", "South", "North", "Wales", "East"],
        "final" => ["Pass", "Withdrawn", "Pass", "Fail", "Unknown"],
    )
    .expect("frame");
    let file = std::fs::File::create(d.join("students.parquet")).expect("create");
    ParquetWriter::new(file)
        .finish(&mut students)
        .expect("parquet");
    // Clicks as zstd TSV, with a site → activity lookup table.
    let clicks = "module\tpresentation\tstudent\tsite\tdate\tclicks\n\
        AAA\t2013J\t11\t1\t2\t5\n\
        AAA\t2013J\t12\t2\t3\t1\n\
        BBB\t2014B\t11\t3\t-1\t2\n\
        BBB\t2014B\t13\t9\t4\t3\n\
        BBB\t2014B\t13\t1\tsoon\t1\n";
    let mut encoder = zstd::Encoder::new(
        std::fs::File::create(d.join("clicks.tsv.zst")).expect("create"),
        3,
    )
    .expect("zstd");
    encoder.write_all(clicks.as_bytes()).expect("write");
    encoder.finish().expect("finish");
    write(
        d,
        "sites.csv",
        "id_site,activity_type\n1,resource\n2,quiz\n3,forumng\n",
    );
    write(
        d,
        "mapping.toml",
        r#"
[contract]
label = "cancellation"
events = { activity = ["oulad.resource", "oulad.forumng"] }

[sources.students]
path = "students.parquet"
[sources.clicks]
path = "clicks.tsv.zst"
[sources.sites]
path = "sites.csv"

[learners]
source = "students"
learner_id = { join = ["module", "presentation", "student"], separator = "_" }
signup_at = { column = "registered", format = "days", start = { column = "presentation", map = { "2013J" = "2013-10-01", "2014B" = "2014-02-01" } } }
plan = { value = "free" }
acquisition_channel = { column = "region" }
filter = [{ column = "final", in = ["Pass", "Withdrawn", "Fail"] }]

[[events]]
source = "clicks"
learner_id = { join = ["module", "presentation", "student"], separator = "_" }
ts = { column = "date", format = "days", start = { column = "presentation", map = { "2013J" = "2013-10-01", "2014B" = "2014-02-01" } } }
event_type = { column = "site", lookup = { source = "sites", key = "id_site", value = "activity_type" }, map = { "2" = "quiz_attempt" }, other = "reject" }
count = { column = "clicks" }
"#,
    );
    // The lookup gives names that are custom types once prefixed: map them.
    let text = std::fs::read_to_string(d.join("mapping.toml")).expect("read");
    write(
        d,
        "mapping.toml",
        &text.replace(
            r#"map = { "2" = "quiz_attempt" }"#,
            r#"map = { "2" = "quiz_attempt", "1" = "oulad.resource", "3" = "oulad.forumng" }"#,
        ),
    );
    let out = tempfile::tempdir().expect("tempdir");
    let report = run(&d.join("mapping.toml"), out.path());
    let students = &report.sections[0];
    assert_eq!(
        (students.read, students.imported, students.filtered),
        (5, 4, 1),
        "{students:?}"
    );
    let events = &report.sections[1];
    // Site 9 is in neither map nor lookup (other = reject); "soon" is no day number.
    assert_eq!(
        (events.read, events.imported, events.rejected),
        (5, 3, 2),
        "{events:?}"
    );
    let loaded = load(out.path());
    assert_eq!(loaded.report.total_rejected(), 0, "{:?}", loaded.report);
    let ds = &loaded.dataset;
    assert_eq!(ds.learners[0].id, "AAA_2013J_11");
    let october = parse_timestamp("2013-10-01T00:00:00Z").expect("time");
    assert_eq!(ds.learners[0].signup_at, october - 10 * DAY_MS);
    assert_eq!(ds.events[0].ts, october + 2 * DAY_MS);
    assert_eq!(ds.events[0].count, 5);
    assert_eq!(ds.custom_event_types, ["oulad.forumng", "oulad.resource"]);
    assert_eq!(ds.events[1].event_type, EventType::QuizAttempt);
    let february = parse_timestamp("2014-02-01T00:00:00Z").expect("time");
    assert_eq!(
        ds.events[2].ts,
        february - DAY_MS,
        "a negative day number is before the start"
    );
}

#[test]
fn a_mapping_mistake_names_its_key_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "events.csv",
        "user,at,kind\nu1,2026-01-01T00:00:00Z,login\n",
    );
    let mapping = |events: &str| {
        format!(
            "[sources.events]\npath = \"events.csv\"\n\n[learners]\nfrom_events = true\nplan = {{ value = \"free\" }}\nacquisition_channel = {{ value = \"x\" }}\n\n[[events]]\nsource = \"events\"\n{events}"
        )
    };
    let error = |events: &str| {
        write(d, "mapping.toml", &mapping(events));
        let out = d.join("out");
        match Mapping::read(&d.join("mapping.toml")) {
            Err(e) => e.to_string(),
            Ok(m) => import(&m, &out)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        }
    };
    let typo = error(
        "learner_id = { column = \"usr\" }\nts = { column = \"at\" }\nevent_type = { column = \"kind\" }\n",
    );
    assert!(
        typo.contains("events[0].learner_id (line 11)") && typo.contains("\"usr\""),
        "{typo}"
    );
    assert!(typo.contains("columns: user, at, kind"), "{typo}");
    let both = error(
        "learner_id = { column = \"user\", value = \"u\" }\nts = { column = \"at\" }\nevent_type = { column = \"kind\" }\n",
    );
    assert!(
        both.contains("exactly one of column, value and join"),
        "{both}"
    );
    let source = error("learner_id = { column = \"user\" }\nts = { column = \"at\" }\nevent_type = { column = \"kind\" }\n").is_empty();
    assert!(source, "a correct mapping imports");
    let unknown_key = error("learner = { column = \"user\" }\n");
    assert!(unknown_key.contains("learner"), "{unknown_key}");
    let bad_type = error(
        "learner_id = { column = \"user\" }\nts = { column = \"at\" }\ncounts = { kind = \"Not A Type\" }\n",
    );
    assert!(bad_type.contains("events[0].counts.kind"), "{bad_type}");
    let bad_format = error(
        "learner_id = { column = \"user\" }\nts = { column = \"at\", format = \"julian\" }\nevent_type = { column = \"kind\" }\n",
    );
    assert!(
        bad_format.contains("events[0].ts") && bad_format.contains("julian"),
        "{bad_format}"
    );
}

#[test]
fn learner_attributes_a_source_join_and_a_scale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "students.csv",
        "id,joined,credits,region\ns1,2026-01-01,60,North\ns2,2026-01-02,,\ns3,2026-01-03,lots,South\n",
    );
    // s2's band is empty in the lookup source: a known key with a missing
    // value, not a key that is not there.
    write(d, "bands.csv", "id,band\ns1,0-10%\ns2,\ns3,90-100%\n");
    write(d, "tests.csv", "test_id,course\nT1,C1\nT2,C2\n");
    write(
        d,
        "due.csv",
        "course,due,kind\nC1,2026-01-10,quiz_attempt\nC2,2026-01-12,badge\nC9,2026-01-15,quiz_attempt\n",
    );
    write(
        d,
        "results.csv",
        "test_id,student,day,score\nT1,s1,2026-01-05,80\nT2,s1,2026-01-06,55\nT3,s2,2026-01-06,40\n",
    );
    write(
        d,
        "mapping.toml",
        r#"
[contract]
learners = { numeric = ["credits"], categorical = ["region", "band"] }
[sources.students]
path = "students.csv"
[sources.bands]
path = "bands.csv"
[sources.tests]
path = "tests.csv"
[sources.results]
path = "results.csv"
join = { source = "tests", key = "test_id" }
[sources.due]
path = "due.csv"

[learners]
source = "students"
learner_id = { column = "id" }
signup_at = { column = "joined", format = "%Y-%m-%d" }
plan = { value = "free" }
acquisition_channel = { value = "organic" }
[learners.attributes]
credits = { column = "credits" }
region = { column = "region" }
band = { column = "id", lookup = { source = "bands", key = "id", value = "band" }, other = "reject" }

[courses]
from_events = true
level = { value = "module" }
lessons = { value = "1" }

[deadlines]
source = "due"
course_id = { column = "course" }
due_at = { column = "due", format = "%Y-%m-%d" }
event_type = { column = "kind" }

[[events]]
source = "results"
learner_id = { column = "student" }
ts = { column = "day", format = "%Y-%m-%d" }
event_type = { value = "quiz_attempt" }
score = { column = "score", scale = 0.01 }
course_id = { column = "course" }
"#,
    );
    let out = d.join("out");
    let report = run(&d.join("mapping.toml"), &out);
    let learners = report
        .sections
        .iter()
        .find(|s| s.section == "learners")
        .expect("learners");
    // s3's credits are not a number: rejected, with the attribute named.
    assert_eq!((learners.imported, learners.rejected), (2, 1));
    assert_eq!(learners.rejects[0].field, "credits");
    // A deadline met by a custom type is a reject of the import; one of an
    // unknown course is the contract's, rejected when the output is read.
    let deadlines = report
        .sections
        .iter()
        .find(|s| s.section == "deadlines")
        .expect("deadlines");
    assert_eq!(
        (deadlines.read, deadlines.imported, deadlines.rejected),
        (3, 2, 1)
    );
    assert_eq!(deadlines.rejects[0].field, "event_type");
    let loaded = load(&out);
    let data = &loaded.dataset;
    assert_eq!(data.deadlines.len(), 1);
    assert_eq!(data.deadlines[0].event_type, EventType::QuizAttempt);
    assert_eq!(loaded.report.total_rejected(), 1, "C9 is not a course");
    assert_eq!(data.attributes.categorical, ["region", "band"]);
    let s1 = &data.learners[0];
    assert_eq!(s1.numeric_attributes, [60.0]);
    assert_eq!(
        s1.categorical_attributes,
        [Some("North".to_owned()), Some("0-10%".to_owned())]
    );
    let s2 = &data.learners[1];
    assert!(s2.numeric_attributes[0].is_nan());
    assert_eq!(s2.categorical_attributes, [None, None]);
    // T3 is not among the tests: its course is empty, and the row kept.
    let mut scores: Vec<(String, bool)> = data
        .events
        .iter()
        .map(|e| (format!("{:.2}", e.score), e.course().is_some()))
        .collect();
    scores.sort();
    assert_eq!(
        scores,
        [
            ("0.40".to_owned(), false),
            ("0.55".to_owned(), true),
            ("0.80".to_owned(), true)
        ]
    );
}
